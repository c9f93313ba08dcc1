#pragma once
// Starting the executor as a child process: `loom` never links MPI or CUDA (DESIGN.md §1), so
// `loom run` and `loom bench executor` start `loom-exec`, through a launcher when ranks are many.

#include <string>
#include <vector>

namespace loom::cli {

// The loom-exec binary next to this one; IoError when it was not built.
std::string executor_path();

// Runs the command and returns its wait status: with inherited standard streams, or with both
// appended to `log_path` when one is given. SIGINT and SIGTERM received meanwhile are forwarded
// to the child (a cancel reaches every rank through the launcher). As root, sets the variables
// Open MPI needs to run.
int spawn_and_wait(const std::vector<std::string>& args, const std::string& log_path = "");

// This `loom` binary, for running its own subcommands as children.
std::string loom_path();

}  // namespace loom::cli
