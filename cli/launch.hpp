#pragma once
// The one launch rule: how many threads each rank gets and how the launcher binds it to cores.
// `loom run`, `loom profile` and `loom bench` all start loom-exec through it, so that no default
// leaves a rank bound to fewer cores than it has threads (Open MPI binds each of 1-2 ranks to
// one core unless told otherwise: two threads on one core ran 100× slower than on two).

#include <cstdint>
#include <string>
#include <vector>

namespace loom::cli {

struct LaunchRequest {
  std::string launcher = "mpirun";  // mpirun, srun, or none (already under a launcher)
  int64_t ranks = 1;                // in all
  int64_t ranks_per_node = 1;       // sharing one node's cores
  int threads_per_rank = 0;         // 0: the node's cores shared out among its ranks
  int cores = 1;                    // physical cores of a node (this host's: nodes are taken alike)
};

struct Launch {
  // What precedes the executor's path: the launcher and its options; empty for `none`.
  std::vector<std::string> launcher_args;
  // Decided here and passed to loom-exec as --threads, so the launch line shows what each rank
  // gets.
  int threads_per_rank = 1;
  // One line (without the "loom: warning: " prefix) when ranks will share cores; empty otherwise.
  std::string warning;
};

// Pure: the same request gives the same launch on any machine. With mpirun, ranks whose threads
// fit the cores are each bound to as many cores as they have threads (`--map-by slot:PE=N
// --bind-to core`); otherwise they are left unbound (Open MPI refuses PE binding once cores run
// out), with `--oversubscribe` when ranks alone outnumber the cores. srun gives each task its
// threads' CPUs (`--cpus-per-task`). InvalidInput for an unknown launcher or a count below 1.
Launch launch_for(const LaunchRequest& request);

// The ranks that will share one node's cores. Under `none` this process is one rank of an outer
// launch: 1. With mpirun and no list of hosts in the environment (a hostfile, or a batch
// system's allocation), every rank runs on this host, however many nodes the plan counts: all
// `ranks`. Otherwise the plan's devices per node.
int64_t ranks_per_node_for(const std::string& launcher, int64_t ranks, int64_t devices_per_node);

// The default threads per rank: the node's cores shared out among its ranks, at least 1.
int default_threads_per_rank(int64_t ranks_per_node, int cores);

// Physical cores this process may run on (hardware threads of one core count once: Open MPI
// counts slots and binds by core); at least 1.
int cores_of_this_host();

// Prints the launch's warning, if any, as `loom: warning: …` on standard error.
void print_launch_warning(const Launch& launch);

}  // namespace loom::cli
