#pragma once
// Starting the executor as a child process: `loom` never links MPI or CUDA (DESIGN.md §1), so
// `loom run` and `loom bench executor` start `loom-exec`, through a launcher when ranks are many.

#include <functional>
#include <string>
#include <vector>

namespace loom::cli {

class ErrorRelay;

// The loom-exec binary next to this one; IoError when it was not built.
std::string executor_path();

// Runs the command and returns its wait status: with inherited standard streams, or with both
// appended to `log_path` when one is given. SIGINT and SIGTERM received meanwhile are forwarded
// to the child (a cancel reaches every rank through the launcher); a child still there 10 s
// after the first one is killed, and so is any process it leaves behind (an orphaned rank).
// `on_cancel` is called once, outside the signal handler, when the first of them arrives. As root,
// sets the variables Open MPI needs to run. With `errors` (and no log), the child's standard error
// goes through that relay, which keeps the first error a rank reports.
int spawn_and_wait(const std::vector<std::string>& args, const std::string& log_path = "",
                   const std::function<void()>& on_cancel = {}, ErrorRelay* errors = nullptr);

// From now on, SIGINT and SIGTERM no longer end this process: they are remembered (see
// cancel_signal_received) and forwarded to the child spawn_and_wait runs, even one started
// after them. For commands that must record a cancel before they exit.
void catch_cancel_signals();
// The first SIGINT or SIGTERM received while caught (by catch_cancel_signals or during
// spawn_and_wait), or 0.
int cancel_signal_received();

// This `loom` binary, for running its own subcommands as children.
std::string loom_path();

}  // namespace loom::cli
