#include "planner/evaluator.hpp"

#include "core/limits.hpp"

#include "simulator/event_simulation.hpp"
#include "simulator/memory_model.hpp"
#include "simulator/step_bound.hpp"

namespace loom::plan {

Evaluator::Evaluator(const SearchRequest& request)
    : request_(request),
      costs_(request.profile, request.training.dtype, request.devices_per_node),
      plan_(make_plan(Candidate{}, request)) {
  options_.record_timeline = false;
}

void Evaluator::score(const Candidate& candidate, Scored& scored) {
  apply(candidate, request_, plan_);
  const std::optional<int64_t> peak = sim::countable_peak_memory_bytes(plan_, sim::memory_options(request_.profile));
  scored.countable = peak.has_value();
  if (!peak) return;
  scored.peak_memory_bytes = *peak;
  if (scored.peak_memory_bytes > request_.profile.device.memory_bytes) return;
  const sim::StepCosts step = step_costs_of();
  scored.bound_s = sim::step_time_lower_bound(step, candidate.pipeline_parallel, int32_t(plan_.virtual_stages()),
                                              int32_t(plan_.microbatches()));
}

double Evaluator::simulate(const Candidate& candidate) {
  apply(candidate, request_, plan_);
  const sim::StepCosts step = step_costs_of();
  return sim::simulate_schedule(schedule_of(), step, options_).step_time_s;
}

sim::StepCosts Evaluator::step_costs_of() {
  const core::ParallelPlan& p = plan_.parallel;
  const auto key = std::make_tuple(p.tensor_parallel, p.sequence_parallel, p.micro_batch_size, int(p.recompute),
                                   plan_.cluster.devices_per_node, p.tp_comm_overlap);
  auto it = layer_costs_.find(key);
  if (it == layer_costs_.end()) it = layer_costs_.emplace(key, sim::layer_costs(plan_, costs_)).first;
  return sim::step_costs(plan_, costs_, it->second, /*with_segments=*/false);
}

const core::PipelineSchedule& Evaluator::schedule_of() {
  const core::ParallelPlan& p = plan_.parallel;
  const auto key = std::make_tuple(int(p.schedule), p.pipeline_parallel, plan_.virtual_stages(), plan_.microbatches());
  auto it = schedules_.find(key);
  if (it == schedules_.end()) {
    // Each schedule may hold up to core::limits::kMaxSimulatedStageMicrobatches triples (about
    // 150 MB); the cache keeps about that much in all, per thread.
    const int64_t triples = p.pipeline_parallel * plan_.virtual_stages() * plan_.microbatches();
    if (cached_triples_ + triples > core::limits::kMaxSimulatedStageMicrobatches) {
      schedules_.clear();
      cached_triples_ = 0;
    }
    cached_triples_ += triples;
    it = schedules_
             .emplace(key, core::build_schedule(p.schedule, int32_t(p.pipeline_parallel), int32_t(plan_.virtual_stages()),
                                                int32_t(plan_.microbatches())))
             .first;
  }
  return it->second;
}

}  // namespace loom::plan
