#include "simulator/prediction.hpp"

#include "core/error.hpp"
#include "core/model_arithmetic.hpp"
#include "core/schedule.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace loom::sim {

double Breakdown::total_s() const {
  return forward_s + backward_s + recompute_s + tp_comm_exposed_s + pp_comm_exposed_s + pp_bubble_s +
         dp_comm_exposed_s + optimizer_s;
}

std::string joined_profile_names(const std::vector<core::Profile>& group_profiles) {
  std::string names;
  for (const core::Profile& profile : group_profiles) names += (names.empty() ? "" : " + ") + profile.name;
  return names;
}

Prediction simulate(const core::Plan& plan, const core::Profile& profile, const SimulationOptions& options) {
  if (plan.cluster.mixed()) {
    std::string groups;
    for (const core::DeviceGroup& g : plan.cluster.groups)
      groups += fmt::format("{}{} node(s) × {} of {}", groups.empty() ? "" : ", ", g.nodes, g.devices_per_node, g.profile);
    throw InvalidInput("the plan's cluster mixes {} device groups ({}); it cannot be simulated on the one profile {}: "
                       "give each group's profile",
                       plan.cluster.groups.size(), groups, profile.name);
  }
  return simulate(plan, std::vector<core::Profile>{profile}, options);
}

Prediction simulate(const core::Plan& requested, const std::vector<core::Profile>& profiles,
                    const SimulationOptions& options) {
  const size_t group_count = requested.cluster.mixed() ? requested.cluster.groups.size() : 1;
  if (profiles.size() != group_count)
    throw InvalidInput("the plan's cluster has {} device group(s) but {} profile(s) were given to simulate it",
                       group_count, profiles.size());
  const core::Plan plan = as_simulated(requested, profiles.front());
  for (const core::Profile& profile : profiles)
    if (simulated_dtype(requested.training.dtype, profile) != plan.training.dtype)
      throw InvalidInput("profiles {} and {} compute {} in different types ({} and {}); a mixed cluster's groups must "
                         "train in one type",
                         profiles.front().name, profile.name, core::to_string(requested.training.dtype),
                         core::to_string(plan.training.dtype),
                         core::to_string(simulated_dtype(requested.training.dtype, profile)));
  // The cheap refusals first: memory that cannot be counted, a schedule too large to simulate.
  Prediction p;
  std::vector<MemoryOptions> group_memory;
  for (const core::Profile& profile : profiles) group_memory.push_back(memory_options(profile));
  p.memory = memory_per_stage(plan, group_memory);
  check_simulation_size(plan);
  std::vector<CostModel> costs;
  std::vector<LayerCosts> layers;
  costs.reserve(profiles.size());
  layers.reserve(profiles.size());
  std::vector<GroupCosts> groups;
  for (const core::Profile& profile : profiles) {
    costs.emplace_back(profile, plan.training.dtype, plan.cluster.devices_per_node);
    layers.push_back(layer_costs(plan, costs.back()));
    groups.push_back({&costs.back(), &layers.back()});
  }
  const StepCosts step = step_costs(plan, groups);
  const core::PipelineSchedule schedule =
      core::build_schedule(plan.parallel.schedule, int32_t(plan.parallel.pipeline_parallel),
                           int32_t(plan.virtual_stages()), int32_t(plan.microbatches()));

  p.profile_name = joined_profile_names(profiles);
  p.dtype = plan.training.dtype;
  p.timeline = simulate_schedule(schedule, step, options);
  p.step_time_s = p.timeline.step_time_s;
  const double devices = double(plan.cluster.world_size());
  const int64_t batch = plan.training.global_batch_size;
  p.tokens_per_s = double(batch * plan.model.seq_length) / p.step_time_s;
  p.model_flops_per_step = core::model_flops_per_step(plan);
  p.hardware_flops_per_step = core::hardware_flops_per_step(plan);
  p.model_tflops_per_device = p.model_flops_per_step / (p.step_time_s * devices) / 1e12;
  p.hardware_tflops_per_device = p.hardware_flops_per_step / (p.step_time_s * devices) / 1e12;
  // MFU against what the cluster could do at peak: each group's devices at its own peak.
  const std::vector<core::DeviceGroup> device_groups = plan.cluster.device_groups();
  double cluster_peak = 0;
  for (size_t g = 0; g < costs.size(); ++g) cluster_peak += double(device_groups[g].devices()) * costs[g].peak_flops_per_s();
  p.mfu = p.model_flops_per_step / (p.step_time_s * cluster_peak);

  // Memory: each stage against its own group's devices.
  const std::vector<int64_t> rank_layers = plan.pipeline_rank_layers();
  const std::vector<int64_t> rank_groups = plan.pipeline_rank_groups();
  p.device_memory_bytes = profiles.front().device.memory_bytes;
  for (const core::Profile& profile : profiles) p.device_memory_bytes = std::min(p.device_memory_bytes, profile.device.memory_bytes);
  p.fits = true;
  const auto& ranks = p.timeline.ranks;
  for (size_t stage = 0; stage < p.memory.size(); ++stage) {
    const core::Profile& profile = profiles[size_t(rank_groups[stage])];
    StagePrediction s;
    s.layers = rank_layers[stage];
    s.device_group = rank_groups[stage];
    s.profile_name = profile.name;
    s.device_memory_bytes = profile.device.memory_bytes;
    s.fits = p.memory[stage].total_bytes() <= s.device_memory_bytes;
    const RankTotals& t = ranks[stage];
    s.busy_s = t.forward_s + t.backward_s + t.recompute_s + t.tp_comm_s + t.pp_comm_s + t.dp_comm_exposed_s + t.optimizer_s;
    p.peak_memory_bytes = std::max(p.peak_memory_bytes, p.memory[stage].total_bytes());
    p.fits = p.fits && s.fits;
    p.stages.push_back(std::move(s));
  }
  p.bottleneck_pipeline_stage = int32_t(std::max_element(p.stages.begin(), p.stages.end(), [](const auto& a, const auto& b) {
                                          return a.busy_s < b.busy_s;
                                        }) - p.stages.begin());

  // The breakdown follows the rank that finishes last; its idle time is the bubble.
  p.critical_pipeline_rank = int32_t(std::max_element(ranks.begin(), ranks.end(), [](const auto& a, const auto& b) {
                                       return a.end_s < b.end_s;
                                     }) - ranks.begin());
  const RankTotals& critical = ranks[size_t(p.critical_pipeline_rank)];
  p.breakdown = {critical.forward_s,  critical.backward_s, critical.recompute_s,      critical.tp_comm_s,
                 critical.pp_comm_s,  critical.idle_s,     critical.dp_comm_exposed_s, critical.optimizer_s,
                 critical.tp_comm_hidden_s, std::max(0.0, critical.dp_comm_s - critical.dp_comm_exposed_s)};
  p.on_link = {critical.tp_comm_s + critical.tp_comm_hidden_s, critical.pp_comm_s, critical.dp_comm_s};
  return p;
}

core::Json to_json(const Prediction& p) {
  core::Json stages = core::Json::array();
  for (size_t i = 0; i < p.memory.size(); ++i) {
    const StageMemory& m = p.memory[i];
    core::Json stage = {{"stage", i},
                        {"weights_bytes", m.weights_bytes},
                        {"gradients_bytes", m.gradients_bytes},
                        {"optimizer_bytes", m.optimizer_bytes},
                        {"activations_bytes", m.activations_bytes},
                        {"other_bytes", m.other_bytes},
                        {"total_bytes", m.total_bytes()}};
    if (i < p.stages.size()) {
      const StagePrediction& s = p.stages[i];
      stage["layers"] = s.layers;
      stage["device_group"] = s.device_group;
      stage["profile"] = s.profile_name;
      stage["device_memory_bytes"] = s.device_memory_bytes;
      stage["fits"] = s.fits;
      stage["busy_s"] = s.busy_s;
    }
    stages.push_back(std::move(stage));
  }
  const Breakdown& b = p.breakdown;
  return {{"format", "loom-prediction"},
          {"version", 1},
          {"profile", p.profile_name},
          {"dtype", core::to_string(p.dtype)},
          {"step_time_s", p.step_time_s},
          {"tokens_per_s", p.tokens_per_s},
          {"model_flops_per_step", p.model_flops_per_step},
          {"hardware_flops_per_step", p.hardware_flops_per_step},
          {"model_tflops_per_device", p.model_tflops_per_device},
          {"hardware_tflops_per_device", p.hardware_tflops_per_device},
          {"mfu", p.mfu},
          {"peak_memory_bytes", p.peak_memory_bytes},
          {"device_memory_bytes", p.device_memory_bytes},
          {"fits", p.fits},
          {"critical_pipeline_rank", p.critical_pipeline_rank},
          {"bottleneck_pipeline_stage", p.bottleneck_pipeline_stage},
          {"breakdown",
           {{"forward_s", b.forward_s},
            {"backward_s", b.backward_s},
            {"recompute_s", b.recompute_s},
            {"tp_comm_exposed_s", b.tp_comm_exposed_s},
            {"pp_comm_exposed_s", b.pp_comm_exposed_s},
            {"pp_bubble_s", b.pp_bubble_s},
            {"dp_comm_exposed_s", b.dp_comm_exposed_s},
            {"optimizer_s", b.optimizer_s},
            {"tp_comm_hidden_s", b.tp_comm_hidden_s},
            {"dp_comm_hidden_s", b.dp_comm_hidden_s}}},
          {"on_link",
           {{"tp_comm_s", p.on_link.tp_comm_s}, {"pp_comm_s", p.on_link.pp_comm_s}, {"dp_comm_s", p.on_link.dp_comm_s}}},
          {"memory", stages}};
}

core::PredictionRow prediction_row(int64_t plan_id, const Prediction& p) {
  core::PredictionRow row;
  row.plan_id = plan_id;
  row.profile_name = p.profile_name;
  row.step_time_s = p.step_time_s;
  row.tokens_per_s = p.tokens_per_s;
  row.mfu = p.mfu;
  row.peak_memory_bytes = p.peak_memory_bytes;
  row.fits = p.fits;
  row.prediction_json = to_json(p).dump();
  return row;
}

}  // namespace loom::sim
