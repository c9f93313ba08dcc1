#pragma once
// Scores candidates of a search, one thread each: peak memory and a lower bound on the step time
// for every valid plan, the full event simulation for the few that might place. Keeps caches of
// what many plans share (layer costs per tensor-parallel shape, schedules per pipeline shape).

#include "core/schedule.hpp"
#include "planner/search_space.hpp"
#include "simulator/cost_model.hpp"
#include "simulator/step_costs.hpp"

#include <map>
#include <tuple>

namespace loom::plan {

// What the search knows about one valid candidate.
struct Scored {
  uint32_t index = 0;  // into the candidate list
  int64_t peak_memory_bytes = 0;
  bool countable = true;  // false: memory beyond core::limits::kMaxCountedBytes (a reject)
  double bound_s = 0;   // lower bound on the step time (fitting plans only)
  double exact_s = -1;  // simulated step time, once known
};

class Evaluator {
 public:
  explicit Evaluator(const SearchRequest& request);

  // Peak memory, and the step-time bound when the plan fits; or that its memory cannot be counted.
  void score(const Candidate& candidate, Scored& scored);
  // The simulated step time, exactly what sim::simulate reports for the plan.
  double simulate(const Candidate& candidate);

 private:
  sim::StepCosts step_costs_of();
  const core::PipelineSchedule& schedule_of();

  const SearchRequest& request_;
  sim::CostModel costs_;
  core::Plan plan_;  // the working plan, rewritten for each candidate
  sim::SimulationOptions options_;
  std::map<std::tuple<int64_t, bool, int64_t, int, int64_t, bool>, sim::LayerCosts> layer_costs_;
  std::map<std::tuple<int, int64_t, int64_t, int64_t>, core::PipelineSchedule> schedules_;
  int64_t cached_triples_ = 0;  // pipeline ranks × virtual stages × microbatches in schedules_
};

}  // namespace loom::plan
