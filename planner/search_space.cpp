#include "planner/search_space.hpp"

#include "core/error.hpp"

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
  if (devices_per_node <= 0 || devices_per_node > 1024)
    throw InvalidInput("--devices-per-node={} must be an integer between 1 and 1024", devices_per_node);
  if (devices > (1 << 20)) throw InvalidInput("--devices={} is larger than the supported {}", devices, 1 << 20);
  if (devices > devices_per_node && devices % devices_per_node != 0)
    throw InvalidInput("--devices={} is not a multiple of --devices-per-node={}: a cluster is made of whole nodes",
                       devices, devices_per_node);
  if (max_micro_batch_size <= 0) throw InvalidInput("--max-micro-batch-size={} must be positive", max_micro_batch_size);
  if (price_per_device_hour && !(std::isfinite(*price_per_device_hour) && *price_per_device_hour >= 0))
    throw InvalidInput("--price-per-device-hour={} must be a non-negative number", *price_per_device_hour);
  if (objective == Objective::cost && !price_per_device_hour)
    throw InvalidInput("--objective cost needs --price-per-device-hour");
}

int64_t RejectCounts::total() const {
  int64_t sum = distributed_optimizer_without_dp + gpipe_without_pipeline + does_not_fit;
  for (int64_t n : by_rule) sum += n;
  return sum;
}

RejectCounts& RejectCounts::operator+=(const RejectCounts& other) {
  for (size_t i = 0; i < by_rule.size(); ++i) by_rule[i] += other.by_rule[i];
  distributed_optimizer_without_dp += other.distributed_optimizer_without_dp;
  gpipe_without_pipeline += other.gpipe_without_pipeline;
  does_not_fit += other.does_not_fit;
  return *this;
}

std::vector<std::pair<std::string, int64_t>> RejectCounts::reasons(int64_t device_memory_bytes) const {
  std::vector<std::pair<std::string, int64_t>> out;
  for (size_t i = 0; i < by_rule.size(); ++i)
    if (by_rule[i] > 0) out.emplace_back(std::string(core::describe(core::PlanRule(i))), by_rule[i]);
  if (distributed_optimizer_without_dp > 0)
    out.emplace_back("distributed optimizer with dp = 1 (same as without)", distributed_optimizer_without_dp);
  if (gpipe_without_pipeline > 0) out.emplace_back("gpipe with pp = 1 (same as 1f1b)", gpipe_without_pipeline);
  if (does_not_fit > 0)
    out.emplace_back(fmt::format("does not fit in {:.0f} GiB", double(device_memory_bytes) / double(1 << 30)),
                     does_not_fit);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

void apply(const Candidate& c, const SearchRequest& request, core::Plan& plan) {
  // Megatron pads the vocabulary to a multiple of 128 × tp (--make-vocab-size-divisible-by 128),
  // so each tensor-parallel size gets its own padding.
  const int64_t multiple = 128 * int64_t(c.tensor_parallel);
  const int64_t vocab = request.model.padded_vocab_size;
  plan.model.padded_vocab_size = vocab % multiple == 0 ? vocab : (vocab / multiple + 1) * multiple;
  const int64_t devices = c.devices > 0 ? c.devices : request.devices;
  plan.cluster.devices_per_node = std::min<int64_t>(request.devices_per_node, devices);
  plan.cluster.nodes = devices / plan.cluster.devices_per_node;
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
}

core::Plan make_plan(const Candidate& candidate, const SearchRequest& request) {
  core::Plan plan;
  plan.model = request.model;
  plan.training = request.training;
  plan.cluster.profile = request.profile_name;
  plan.cluster.price_per_device_hour = request.price_per_device_hour;
  apply(candidate, request, plan);
  return plan;
}

namespace {

// Device counts to try: all of them, or with --allow-fewer-devices every whole number of nodes
// and every divisor of one node's devices.
std::vector<int64_t> device_counts(const SearchRequest& r) {
  if (!r.allow_fewer_devices) return {r.devices};
  std::vector<int64_t> counts;
  for (int64_t d = 1; d < std::min(r.devices_per_node, r.devices); ++d)
    if (r.devices_per_node % d == 0) counts.push_back(d);
  for (int64_t d = std::min(r.devices_per_node, r.devices); d <= r.devices; d += r.devices_per_node) counts.push_back(d);
  return counts;
}

std::vector<int64_t> divisors_below(int64_t n) {
  std::vector<int64_t> out;
  for (int64_t d = 1; d < n; ++d)
    if (n % d == 0) out.push_back(d);
  return out;
}

}  // namespace

std::vector<Candidate> enumerate_candidates(const SearchRequest& request, RejectCounts& rejects, int64_t& combinations) {
  std::vector<Candidate> valid;
  combinations = 0;
  core::Plan plan = make_plan(Candidate{}, request);
  const int64_t layers = request.model.num_layers;
  std::vector<int64_t> micro_batches;
  for (int64_t b = 1; b <= request.max_micro_batch_size; b *= 2) micro_batches.push_back(b);
  constexpr core::Recompute kRecomputes[] = {core::Recompute::none, core::Recompute::selective, core::Recompute::full};

  for (int64_t devices : device_counts(request)) {
    const int64_t max_tp = request.allow_cross_node_tp ? devices : std::min(devices, request.devices_per_node);
    for (int64_t tp = 1; tp <= max_tp; ++tp) {
      for (int64_t pp = 1; pp <= std::min(layers, devices / tp); ++pp) {
        const int64_t dp = devices % (tp * pp) == 0 ? devices / (tp * pp) : 0;
        // Interleaving choices: none, or any layers-per-virtual-stage dividing the stage.
        std::vector<std::pair<core::Schedule, int64_t>> schedules = {{core::Schedule::gpipe, 0},
                                                                     {core::Schedule::one_f_one_b, 0}};
        if (layers % pp == 0)
          for (int64_t per_virtual : divisors_below(layers / pp)) schedules.push_back({core::Schedule::interleaved, per_virtual});
        for (int64_t micro_batch : micro_batches)
          for (const auto& [schedule, per_virtual] : schedules)
            for (core::Recompute recompute : kRecomputes)
              for (bool sp : {false, true})
                for (bool distributed : {false, true}) {
                  const Candidate c{int32_t(devices), int32_t(tp),         int32_t(pp),
                                    int32_t(dp),      int32_t(micro_batch), int32_t(per_virtual),
                                    schedule,         recompute,            sp,
                                    distributed};
                  ++combinations;
                  apply(c, request, plan);
                  if (dp == 0) plan.parallel.data_parallel = 0;
                  if (const auto rule = plan.violated_rule()) {
                    ++rejects.by_rule[size_t(*rule)];
                    continue;
                  }
                  if (distributed && dp == 1) {
                    ++rejects.distributed_optimizer_without_dp;
                    continue;
                  }
                  if (schedule == core::Schedule::gpipe && pp == 1) {
                    ++rejects.gpipe_without_pipeline;
                    continue;
                  }
                  valid.push_back(c);
                }
      }
    }
  }
  return valid;
}

}  // namespace loom::plan
