#pragma once
// Scores candidates of a search, one thread each: peak memory and a lower bound on the step time
// for every valid plan, the full event simulation for the few that might place. Keeps caches of
// what many plans share (layer costs per tensor-parallel shape and device group, schedules per
// pipeline shape). Layer splits are read from the plan apply() writes, never cached: step costs
// and gradient buckets are built anew for every candidate.

#include "core/schedule.hpp"
#include "planner/search_space.hpp"
#include "simulator/cost_model.hpp"
#include "simulator/memory_model.hpp"
#include "simulator/step_costs.hpp"

#include <map>
#include <memory>
#include <tuple>
#include <vector>

namespace loom::plan {

// What the search knows about one valid candidate.
struct Scored {
  uint32_t index = 0;  // into the candidate list
  int64_t peak_memory_bytes = 0;  // the most any stage needs
  // The most any stage needs beyond its own device group's memory (≤ 0: every stage fits). On one
  // kind of device, peak_memory_bytes − the device's memory.
  int64_t excess_memory_bytes = 0;
  bool fits = false;      // every stage within its group's device memory (excess ≤ 0)
  bool countable = true;  // false: memory beyond core::limits::kMaxCountedBytes (a reject)
  double bound_s = 0;   // lower bound on the step time (fitting plans only)
  double exact_s = -1;  // simulated step time, once known
};

class Evaluator {
 public:
  explicit Evaluator(const SearchRequest& request);

  // Peak memory and whether every stage fits, and the step-time bound when it does; or that its
  // memory cannot be counted.
  void score(const Candidate& candidate, Scored& scored);
  // The simulated step time, exactly what sim::simulate reports for the plan (with
  // request.group_profiles on a mixed cluster).
  double simulate(const Candidate& candidate);

 private:
  sim::StepCosts step_costs_of();
  const core::PipelineSchedule& schedule_of();

  const SearchRequest& request_;
  // One cost model per device group (request.group_profiles; the request's profile alone on a
  // cluster of one kind), and each group's memory.
  std::vector<std::unique_ptr<sim::CostModel>> costs_;
  std::vector<sim::GroupMemory> group_memory_;
  core::Plan plan_;  // the working plan, rewritten for each candidate
  sim::SimulationOptions options_;
  std::vector<sim::GroupCosts> groups_;  // reused for each candidate
  // By (group, tp, sp, micro-batch, recompute, devices per node, tp-comm-overlap).
  std::map<std::tuple<size_t, int64_t, bool, int64_t, int, int64_t, bool>, sim::LayerCosts> layer_costs_;
  std::map<std::tuple<int, int64_t, int64_t, int64_t>, core::PipelineSchedule> schedules_;
  int64_t cached_triples_ = 0;  // pipeline ranks × virtual stages × microbatches in schedules_
};

}  // namespace loom::plan
