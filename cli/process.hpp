#pragma once
// Starting the executor as a child process: `loom` never links MPI or CUDA (DESIGN.md §1), so
// `loom run` and `loom bench executor` start `loom-exec`, through a launcher when ranks are many.

#include <string>
#include <vector>

namespace loom::cli {

// The loom-exec binary next to this one; IoError when it was not built.
std::string executor_path();

// Runs the command with inherited standard streams and returns its wait status. SIGINT and
// SIGTERM received meanwhile are forwarded to the child (a cancel reaches every rank through the
// launcher). As root, sets the variables Open MPI needs to run.
int spawn_and_wait(const std::vector<std::string>& args);

}  // namespace loom::cli
