#pragma once
// A lower bound on the simulated step time, from the action costs alone, without building or
// running the schedule. A search simulates plans in order of this bound and stops once the bound
// exceeds the times it must beat, so its result is exactly that of simulating every plan.

#include "simulator/step_costs.hpp"

#include <cstdint>

namespace loom::sim {

// For every pipeline rank r, the step cannot end before
//   (the first microbatch's forwards on the stages before r)
//   + (everything r itself does up to its last backward: its forwards, backwards and sends)
//   + max(r's gradient sync and optimizer step,
//         the last microbatch's backwards on the stages before r + rank 0's sync and step),
// where the sync counts what grad_sync reduces and, with overlap-grad-reduce, the last bucket
// (complete only when the last backward ends). Waits for overlapped gathers and the contention
// of overlapped transfers only lengthen the step.
// Holds for GPipe, 1F1B and interleaved schedules: each rank starts with microbatch 0 on its
// first chunk and ends with the last microbatch's backward on that chunk. Every term is read per
// stage or per rank from `costs`, so it holds as well when stages hold different layers (uneven
// splits) or run on different devices (mixed clusters).
double step_time_lower_bound(const StepCosts& costs, int32_t pipeline_size, int32_t virtual_stages,
                             int32_t microbatches);

}  // namespace loom::sim
