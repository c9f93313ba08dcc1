#pragma once
// The simulated timeline as Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and
// chrome://tracing open: one process per pipeline rank, one thread per stream (compute, TP comm,
// PP comm, DP comm), complete events ("X") with times in µs, and flow arrows ("s"/"f") from each
// send to its receive.

#include "core/json_reader.hpp"
#include "core/plan.hpp"
#include "simulator/prediction.hpp"

#include <string>

namespace loom::sim {

core::Json chrome_trace(const core::Plan& plan, const Prediction& prediction);
// The same document as text (chrome_trace(…).dump() and a newline), written one event at a time:
// a JSON tree of a million events takes about 1.5 GB, the text a tenth of it.
std::string chrome_trace_text(const core::Plan& plan, const Prediction& prediction);

}  // namespace loom::sim
