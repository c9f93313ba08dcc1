#include "planner/evaluator.hpp"

#include "core/error.hpp"
#include "core/limits.hpp"

#include "simulator/event_simulation.hpp"
#include "simulator/step_bound.hpp"

namespace loom::plan {

Evaluator::Evaluator(const SearchRequest& request) : request_(request), plan_(make_plan(Candidate{}, request)) {
  options_.record_timeline = false;
  if (request.groups.empty()) {
    costs_.push_back(std::make_unique<sim::CostModel>(request.profile, request.training.dtype, request.devices_per_node));
    group_memory_.push_back({sim::memory_options(request.profile), request.profile.device.memory_bytes});
  } else {
    if (request.group_profiles.size() != request.groups.size())
      throw InvalidInput("a search over {} device groups was given {} group profiles", request.groups.size(),
                         request.group_profiles.size());
    for (const core::Profile& profile : request.group_profiles) {
      costs_.push_back(std::make_unique<sim::CostModel>(profile, request.training.dtype, request.devices_per_node));
      group_memory_.push_back({sim::memory_options(profile), profile.device.memory_bytes});
    }
  }
  groups_.resize(costs_.size());
}

void Evaluator::score(const Candidate& candidate, Scored& scored) {
  apply(candidate, request_, plan_);
  if (request_.groups.empty()) {
    const std::optional<int64_t> peak = sim::countable_peak_memory_bytes(plan_, group_memory_.front().options);
    scored.countable = peak.has_value();
    if (!peak) return;
    scored.peak_memory_bytes = *peak;
    scored.excess_memory_bytes = *peak - group_memory_.front().capacity_bytes;
  } else {
    // Each stage against its own group's devices.
    const std::optional<sim::MemoryFit> fit = sim::countable_memory_fit(plan_, group_memory_);
    scored.countable = fit.has_value();
    if (!fit) return;
    scored.peak_memory_bytes = fit->peak_bytes;
    scored.excess_memory_bytes = fit->excess_bytes;
  }
  scored.fits = scored.excess_memory_bytes <= 0;
  if (!scored.fits) return;
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
  for (size_t g = 0; g < costs_.size(); ++g) {
    const auto key = std::make_tuple(g, p.tensor_parallel, p.sequence_parallel, p.micro_batch_size, int(p.recompute),
                                     plan_.cluster.devices_per_node, p.tp_comm_overlap);
    auto it = layer_costs_.find(key);
    if (it == layer_costs_.end()) it = layer_costs_.emplace(key, sim::layer_costs(plan_, *costs_[g])).first;
    groups_[g] = {costs_[g].get(), &it->second};  // std::map: the address stays valid
  }
  // Each candidate's own layer split (plan_.parallel.pipeline_layer_split, written by apply) is read
  // here, so nothing split-dependent is ever reused across candidates.
  return sim::step_costs(plan_, groups_, /*with_segments=*/false);
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
