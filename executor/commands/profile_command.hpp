#pragma once
// `loom-exec profile`: measures this machine's executor kernels and collectives into a Loom
// profile with provenance "measured" (DESIGN.md §5), so predictions for this machine are about
// the very code that runs here: the CPU's (Eigen, MPI) or a GPU's (CUDA, NCCL).

#include "executor/kernels/backend.hpp"

#include <string>

namespace loom::exec {

struct ProfileOptions {
  std::string out_path;  // the profile JSON (written by rank 0)
  std::string name;      // default "<backend>-" + host name
  bool quick = false;    // a reduced grid, under a minute
  bool off_grid = false; // sizes between the quick grid's points, to check interpolation
  int threads = 1;
  Backend backend = Backend::cpu;
};

// What can be refused before MPI starts, one line each (InvalidInput): a backend that cannot
// run here, and --off-grid with cuda (the off-grid sizes check the CPU grid).
void check_profile_options(const ProfileOptions& options);

int run_profile(const ProfileOptions& options);

}  // namespace loom::exec
