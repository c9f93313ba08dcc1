#pragma once
// `loom-exec profile`: measures this machine's executor kernels and MPI collectives into a Loom
// profile with provenance "measured" (DESIGN.md §5), so predictions for this machine are about
// the very code that runs here.

#include <string>

namespace loom::exec {

struct ProfileOptions {
  std::string out_path;  // the profile JSON (written by rank 0)
  std::string name;      // default "cpu-" + host name
  bool quick = false;    // a reduced grid, under a minute
  bool off_grid = false; // sizes between the quick grid's points, to check interpolation
  int threads = 1;
};

int run_profile(const ProfileOptions& options);

}  // namespace loom::exec
