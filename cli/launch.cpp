#include "cli/launch.hpp"

#include "core/error.hpp"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>
#include <utility>

namespace loom::cli {
namespace {

std::string counted(int64_t n, const char* noun) {
  return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}

// Why ranks will be slower than they could be, and what would fit instead.
std::string sharing_warning(const LaunchRequest& r, int threads, bool unbound) {
  const int64_t busy = r.ranks_per_node * threads;
  std::string text = fmt::format(
      "{} per node × {} per rank = {} on {}: ranks will share cores and slow each other",
      counted(r.ranks_per_node, "rank"), counted(threads, "thread"), counted(busy, "thread"),
      counted(r.cores, "core"));
  if (unbound) text += ", so they run unbound";
  if (r.ranks_per_node <= r.cores)
    text +=
        fmt::format(" (--threads {} fits)", default_threads_per_rank(r.ranks_per_node, r.cores));
  else
    text += fmt::format(" (more ranks than cores: {} of 1 thread fit a node)",
                        counted(r.cores, "rank"));
  return text;
}

}  // namespace

int64_t ranks_per_node_for(const std::string& launcher, int64_t ranks, int64_t devices_per_node) {
  if (launcher == "none") return 1;
  if (launcher != "mpirun") return std::min(ranks, devices_per_node);
  // Where Open MPI would find other hosts: a default hostfile, or the allocation of Slurm, PBS,
  // LSF or Grid Engine, which it reads by itself.
  for (const char* variable : {"OMPI_MCA_orte_default_hostfile", "OMPI_MCA_rmaps_base_hostfile", "SLURM_JOB_NODELIST",
                               "PBS_NODEFILE", "LSB_HOSTS", "PE_HOSTFILE"})
    if (const char* value = std::getenv(variable); value != nullptr && *value != '\0')
      return std::min(ranks, devices_per_node);
  return ranks;
}

int default_threads_per_rank(int64_t ranks_per_node, int cores) {
  return int(std::max<int64_t>(1, int64_t(cores) / std::max<int64_t>(1, ranks_per_node)));
}

Launch launch_for(const LaunchRequest& r) {
  if (r.ranks < 1 || r.ranks_per_node < 1 || r.ranks_per_node > r.ranks)
    throw InvalidInput("cannot launch {} rank(s) with {} per node", r.ranks, r.ranks_per_node);
  if (r.threads_per_rank < 0)
    throw InvalidInput("--threads={} must be positive", r.threads_per_rank);
  if (r.cores < 1) throw InvalidInput("a node of {} cores runs nothing", r.cores);
  Launch launch;
  launch.threads_per_rank = r.threads_per_rank > 0
                                ? r.threads_per_rank
                                : default_threads_per_rank(r.ranks_per_node, r.cores);
  const int threads = launch.threads_per_rank;
  const bool fits = r.ranks_per_node * threads <= r.cores;
  if (r.launcher == "mpirun") {
    launch.launcher_args = {"mpirun", "-np", std::to_string(r.ranks)};
    if (fits) {
      // Each rank on cores of its own, as many as its threads (PE = processing elements per rank).
      launch.launcher_args.insert(
          launch.launcher_args.end(),
          {"--map-by", fmt::format("slot:PE={}", threads), "--bind-to", "core"});
    } else {
      // Open MPI 4.1 refuses PE binding beyond the cores ("binding more processes than cpus"), and
      // its default binding would pin several threads to one core: the kernel spreads them best.
      if (r.ranks_per_node > r.cores) launch.launcher_args.push_back("--oversubscribe");
      launch.launcher_args.insert(launch.launcher_args.end(), {"--bind-to", "none"});
      launch.warning = sharing_warning(r, threads, true);
    }
  } else if (r.launcher == "srun") {
    // Slurm allocates and binds the CPUs of each task, or refuses the step: no sharing to warn of.
    launch.launcher_args = {"srun", "--ntasks", std::to_string(r.ranks), "--cpus-per-task",
                            std::to_string(threads)};
  } else if (r.launcher == "none") {
    // Already placed by whoever started us; only the count can be checked.
    if (!fits) launch.warning = sharing_warning(r, threads, false);
  } else {
    throw InvalidInput("launcher '{}': expected mpirun, srun or none", r.launcher);
  }
  return launch;
}

int cores_of_this_host() {
  const int fallback = std::max(1, int(std::thread::hardware_concurrency()));
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return fallback;
  std::set<std::pair<int, int>> cores;  // (package, core)
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    const std::string topology = fmt::format("/sys/devices/system/cpu/cpu{}/topology/", cpu);
    int package = -1, core = -1;
    std::ifstream(topology + "physical_package_id") >> package;
    std::ifstream(topology + "core_id") >> core;
    // Without a topology, each CPU is a core of its own.
    cores.insert(core < 0 ? std::pair{-1, cpu} : std::pair{package, core});
  }
  return cores.empty() ? fallback : int(cores.size());
}

void print_launch_warning(const Launch& launch) {
  if (!launch.warning.empty()) fmt::print(stderr, "loom: warning: {}\n", launch.warning);
}

}  // namespace loom::cli
