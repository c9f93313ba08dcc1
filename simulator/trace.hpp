#pragma once
// The simulated timeline as Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and
// chrome://tracing open: one process per pipeline rank, one thread per stream (compute, TP comm,
// PP comm, DP comm), complete events ("X") with times in µs, and flow arrows ("s"/"f") from each
// send to its receive.

#include "core/json_reader.hpp"
#include "core/plan.hpp"
#include "simulator/prediction.hpp"

namespace loom::sim {

core::Json chrome_trace(const core::Plan& plan, const Prediction& prediction);

}  // namespace loom::sim
