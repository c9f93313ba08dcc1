#pragma once
// Times the schedule's action lists (core/schedule) the way the executor runs them: each
// pipeline rank works through its list in order; a send and its matching receive happen
// together (blocking, rendezvous), occupying both ranks for the transfer; compute actions take
// their cost. Every pipeline rank stands for all tensor and data-parallel ranks that share its
// stage, which behave identically.

#include "core/plan.hpp"
#include "core/schedule.hpp"
#include "simulator/step_costs.hpp"

#include <string>
#include <vector>

namespace loom::sim {

struct TimelineEvent {
  int32_t pipeline_rank = 0;
  Stream stream = Stream::compute;
  std::string name;  // "F3", "B3.1", "layer", "send activation 3", "grad sync", ...
  double start_s = 0;
  double duration_s = 0;
  int32_t microbatch = -1;
  int32_t chunk = 0;
};

// A transfer between pipeline ranks, for the trace's flow arrows.
struct Transfer {
  int32_t from_rank = 0, to_rank = 0;
  double start_s = 0, end_s = 0;
  std::string name;
};

// Where one pipeline rank's step went. The parts sum to the step time.
struct RankTotals {
  double forward_s = 0;
  double backward_s = 0;
  double recompute_s = 0;
  double tp_comm_s = 0;           // exposed
  double tp_comm_hidden_s = 0;    // beside GEMMs (tp-comm-overlap)
  double pp_comm_s = 0;           // transfers this rank took part in
  double dp_comm_s = 0;           // on the link, overlapped or not
  double dp_comm_exposed_s = 0;   // the part that held the rank up
  double optimizer_s = 0;
  double idle_s = 0;              // waiting for a peer: the pipeline bubble
  double end_s = 0;               // when this rank finished the step
};

struct Timeline {
  double step_time_s = 0;  // the last rank's finish
  std::vector<RankTotals> ranks;
  std::vector<TimelineEvent> events;  // only with SimulationOptions::record_timeline
  std::vector<Transfer> transfers;
};

// Throws InvalidInput when the schedule holds more than core::limits::kMaxSimulatedStageMicrobatches
// (pipeline rank, virtual stage, microbatch) triples, or when a recorded timeline would pass
// options.max_timeline_events.
Timeline simulate_schedule(const core::PipelineSchedule& schedule, const StepCosts& costs,
                           const SimulationOptions& options);

// Pipeline ranks × virtual stages × microbatches: what a plan's schedule, and the time and memory
// of its simulation, grow with.
int64_t stage_microbatches(const core::Plan& plan);
// Throws InvalidInput, naming the batch split and core::limits::kMaxSimulatedStageMicrobatches,
// when the plan's schedule is too large to build and simulate. Before build_schedule.
void check_simulation_size(const core::Plan& plan);

}  // namespace loom::sim
