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

// How a watched child ended: its wait status, and whether it was ended here because its standard
// output fell silent for longer than the heartbeat timeout.
struct WatchedExit {
  int status = 0;
  bool heartbeat_missed = false;
};

// spawn_and_wait with the child's standard output read here, line by line: each line goes to
// `on_line` (without its newline) and counts as a heartbeat. With `heartbeat_timeout_s` > 0, a
// child that writes no line for that long (from its start, or from its last line) is sent SIGTERM,
// then SIGKILL after the cancel grace, and whatever it left behind is killed. SIGINT and SIGTERM
// are forwarded and `on_cancel` called as in spawn_and_wait.
WatchedExit spawn_and_watch(const std::vector<std::string>& args, const std::function<void(const std::string&)>& on_line,
                            double heartbeat_timeout_s, const std::function<void()>& on_cancel = {},
                            ErrorRelay* errors = nullptr);

// Kills (SIGKILL) and reaps every child process of this one that is still there: the ranks a
// launcher left behind (this process is their subreaper once spawn_and_wait has run).
void end_leftover_processes();

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
