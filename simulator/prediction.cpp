#include "simulator/prediction.hpp"

#include "core/model_arithmetic.hpp"
#include "core/schedule.hpp"

#include <algorithm>

namespace loom::sim {

double Breakdown::total_s() const {
  return forward_s + backward_s + recompute_s + tp_comm_exposed_s + pp_comm_exposed_s + pp_bubble_s +
         dp_comm_exposed_s + optimizer_s;
}

Prediction simulate(const core::Plan& requested, const core::Profile& profile, const SimulationOptions& options) {
  const core::Plan plan = as_simulated(requested, profile);
  // The cheap refusals first: memory that cannot be counted, a schedule too large to simulate.
  Prediction p;
  p.memory = memory_per_stage(plan, memory_options(profile));
  check_simulation_size(plan);
  const CostModel costs(profile, plan.training.dtype, plan.cluster.devices_per_node);
  const StepCosts step = step_costs(plan, costs);
  const core::PipelineSchedule schedule =
      core::build_schedule(plan.parallel.schedule, int32_t(plan.parallel.pipeline_parallel),
                           int32_t(plan.virtual_stages()), int32_t(plan.microbatches()));

  p.profile_name = profile.name;
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
  p.mfu = p.model_flops_per_step / (p.step_time_s * devices * costs.peak_flops_per_s());

  for (const StageMemory& stage : p.memory) p.peak_memory_bytes = std::max(p.peak_memory_bytes, stage.total_bytes());
  p.device_memory_bytes = profile.device.memory_bytes;
  p.fits = p.peak_memory_bytes <= p.device_memory_bytes;

  // The breakdown follows the rank that finishes last; its idle time is the bubble.
  const auto& ranks = p.timeline.ranks;
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
    stages.push_back({{"stage", i},
                      {"weights_bytes", m.weights_bytes},
                      {"gradients_bytes", m.gradients_bytes},
                      {"optimizer_bytes", m.optimizer_bytes},
                      {"activations_bytes", m.activations_bytes},
                      {"other_bytes", m.other_bytes},
                      {"total_bytes", m.total_bytes()}});
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
