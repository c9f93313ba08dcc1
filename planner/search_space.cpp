#include "planner/search_space.hpp"

#include "core/error.hpp"
#include "core/limits.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace loom::plan {

std::string_view to_string(Objective objective) {
  switch (objective) {
    case Objective::step_time: return "step-time";
    case Objective::tokens_per_s: return "tokens-per-s";
    case Objective::cost: return "cost";
    case Objective::memory: return "memory";
  }
  return "?";
}

Objective parse_objective(std::string_view text) {
  for (Objective o : {Objective::step_time, Objective::tokens_per_s, Objective::cost, Objective::memory})
    if (to_string(o) == text) return o;
  throw InvalidInput("--objective={} is not valid; expected one of step-time, tokens-per-s, cost, memory", text);
}

void SearchRequest::validate() const {
  model.validate();
  training.validate();
  if (devices <= 0) throw InvalidInput("--devices={} must be a positive integer", devices);
  if (devices_per_node <= 0 || devices_per_node > core::limits::kMaxDevicesPerNode)
    throw InvalidInput("--devices-per-node={} must be an integer between 1 and {}", devices_per_node,
                       core::limits::kMaxDevicesPerNode);
  if (devices > core::limits::kMaxDevices)
    throw InvalidInput("--devices={} is larger than the supported {}", devices, core::limits::kMaxDevices);
  if (devices > devices_per_node && devices % devices_per_node != 0)
    throw InvalidInput("--devices={} is not a multiple of --devices-per-node={}: a cluster is made of whole nodes",
                       devices, devices_per_node);
  if (max_micro_batch_size <= 0) throw InvalidInput("--max-micro-batch-size={} must be positive", max_micro_batch_size);
  if (max_micro_batch_size > core::limits::kMaxMicroBatch)
    throw InvalidInput("--max-micro-batch-size={} is larger than the supported {}", max_micro_batch_size,
                       core::limits::kMaxMicroBatch);
  if (price_per_device_hour &&
      !(std::isfinite(*price_per_device_hour) && *price_per_device_hour >= 0 &&
        *price_per_device_hour <= core::limits::kMaxPricePerDeviceHour))
    throw InvalidInput("--price-per-device-hour={} must be a non-negative number, at most {}",
                       *price_per_device_hour, core::limits::kMaxPricePerDeviceHour);
  if (objective == Objective::cost && !price_per_device_hour)
    throw InvalidInput("--objective cost needs --price-per-device-hour");
  if (!groups.empty()) validate_groups();
}

int64_t SearchRequest::device_memory_bytes() const {
  int64_t capacity = profile.device.memory_bytes;
  for (const core::Profile& group : group_profiles) capacity = std::min(capacity, group.device.memory_bytes);
  return capacity;
}

void SearchRequest::validate_groups() const {
  core::ClusterSpec cluster;
  cluster.groups = groups;
  cluster.summarise_groups();  // each group's counts, and one devices-per-node for all
  if (group_profiles.size() != groups.size())
    throw InvalidInput("a mixed cluster of {} groups needs a profile for each ({} given)", groups.size(),
                       group_profiles.size());
  if (cluster.world_size() != devices || cluster.devices_per_node != devices_per_node)
    throw InvalidInput("the search's --devices={} and --devices-per-node={} do not summarise its cluster groups "
                       "({} devices, {} per node)",
                       devices, devices_per_node, cluster.world_size(), cluster.devices_per_node);
  if (allow_fewer_devices)
    throw InvalidInput("--allow-fewer-devices cannot be used with a mixed cluster: its groups are searched whole");
}

int64_t RejectCounts::total() const {
  int64_t sum = distributed_optimizer_without_dp + gpipe_without_pipeline + overlap_without_dp + too_large_to_simulate +
                does_not_fit + not_countable;
  for (int64_t n : by_rule) sum += n;
  return sum;
}

RejectCounts& RejectCounts::operator+=(const RejectCounts& other) {
  for (size_t i = 0; i < by_rule.size(); ++i) by_rule[i] += other.by_rule[i];
  distributed_optimizer_without_dp += other.distributed_optimizer_without_dp;
  gpipe_without_pipeline += other.gpipe_without_pipeline;
  overlap_without_dp += other.overlap_without_dp;
  too_large_to_simulate += other.too_large_to_simulate;
  does_not_fit += other.does_not_fit;
  not_countable += other.not_countable;
  return *this;
}

std::vector<std::pair<std::string, int64_t>> RejectCounts::reasons(int64_t device_memory_bytes) const {
  std::vector<std::pair<std::string, int64_t>> out;
  for (size_t i = 0; i < by_rule.size(); ++i)
    if (by_rule[i] > 0) out.emplace_back(std::string(core::describe(core::PlanRule(i))), by_rule[i]);
  if (distributed_optimizer_without_dp > 0)
    out.emplace_back("distributed optimizer with dp = 1 (same as without)", distributed_optimizer_without_dp);
  if (gpipe_without_pipeline > 0) out.emplace_back("gpipe with pp = 1 (same as 1f1b)", gpipe_without_pipeline);
  if (overlap_without_dp > 0)
    out.emplace_back("overlap-grad-reduce with dp = 1 (same as without)", overlap_without_dp);
  if (too_large_to_simulate > 0)
    out.emplace_back(fmt::format("pp × virtual stages × microbatches above {} (too large to simulate)",
                                 core::limits::kMaxSimulatedStageMicrobatches),
                     too_large_to_simulate);
  if (not_countable > 0) out.emplace_back("memory beyond what Loom counts (over 2^60 bytes per device)", not_countable);
  if (does_not_fit > 0)
    out.emplace_back(fmt::format("does not fit in {:.0f} GiB", double(device_memory_bytes) / double(1 << 30)),
                     does_not_fit);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

core::ModelSpec searched_model(const core::ModelSpec& model) {
  core::ModelSpec searched = model;
  if (model.padded_vocab_size && !model.vocab_size) {
    searched.vocab_size = model.padded_vocab_size;
    searched.make_vocab_size_divisible_by = core::kDefaultMakeVocabSizeDivisibleBy;
    searched.padded_vocab_size.reset();
  }
  return searched;
}

void apply(const Candidate& c, const SearchRequest& request, core::Plan& plan) {
  const int64_t devices = c.devices > 0 ? c.devices : request.devices;
  if (request.groups.empty()) {
    plan.cluster.devices_per_node = std::min<int64_t>(request.devices_per_node, devices);
    plan.cluster.nodes = devices / plan.cluster.devices_per_node;
  }  // a mixed cluster is always searched whole (make_plan set it)
  core::ParallelPlan& p = plan.parallel;
  p.tensor_parallel = c.tensor_parallel;
  p.pipeline_parallel = c.pipeline_parallel;
  p.data_parallel = c.data_parallel;
  p.micro_batch_size = c.micro_batch_size;
  p.schedule = c.schedule;
  p.layers_per_virtual_stage =
      c.layers_per_virtual_stage > 0 ? std::optional<int64_t>(c.layers_per_virtual_stage) : std::nullopt;
  p.recompute = c.recompute;
  p.sequence_parallel = c.sequence_parallel;
  p.distributed_optimizer = c.distributed_optimizer;
  p.overlap_grad_reduce = c.overlap_grad_reduce;
  p.overlap_param_gather = c.overlap_param_gather;
  p.tp_comm_overlap = c.tp_comm_overlap;
  p.attention_backend = request.attention_backend;
  p.virtual_stages_per_rank.reset();
  if (c.split.form == SplitForm::even) {
    p.pipeline_layer_split.clear();
  } else {
    thread_local std::vector<int64_t> rank_groups;  // reused: apply runs for every plan scored
    if (request.groups.empty()) rank_groups.assign(size_t(c.pipeline_parallel), 0);
    else rank_groups = rank_groups_of(request.groups, c.pipeline_parallel, int64_t(c.tensor_parallel) * c.data_parallel);
    write_layer_split(c.split, plan.model.num_layers, c.pipeline_parallel, rank_groups, p.pipeline_layer_split);
  }
}

core::Plan make_plan(const Candidate& candidate, const SearchRequest& request) {
  core::Plan plan;
  plan.model = searched_model(request.model);
  plan.training = request.training;
  plan.cluster.profile = request.profile_name;
  plan.cluster.price_per_device_hour = request.price_per_device_hour;
  if (!request.groups.empty()) {
    plan.cluster.groups = request.groups;
    plan.cluster.summarise_groups();
  }
  apply(candidate, request, plan);
  return plan;
}

}  // namespace loom::plan
