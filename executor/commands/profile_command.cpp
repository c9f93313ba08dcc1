// `loom-exec profile`: rank 0 measures the kernels while the other ranks sleep, then every rank
// takes part in the collectives; rank 0 writes the profile. The measurements live in
// executor/profile/, one file each.

#include "executor/commands/profile_command.hpp"

#include "core/error.hpp"
#include "core/output_file.hpp"  // check_output_target, write_output_file
#include "core/profile.hpp"
#include "executor/comm/world.hpp"  // make_world_communicator, node_local_rank
#include "executor/commands/bench_command.hpp"  // require_usable
#include "executor/profile/document.hpp"
#include "executor/profile/grid.hpp"
#include "executor/profile/measure.hpp"
#include "executor/profile/probe.hpp"  // measure_load

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace loom::exec {
namespace {

void write_profile(const core::Json& document, const std::string& path) {
  core::profile_from_json(document, "the measured profile");  // what is written must read back
  core::write_output_file(path, document.dump(2) + "\n");
}

profile::ProfileGrid grid_for(const ProfileOptions& options) {
  if (options.backend == Backend::cuda) return profile::gpu_profile_grid(options.quick);
  return options.off_grid ? profile::off_grid() : profile::profile_grid(options.quick);
}

// The last line: the figures a simulation of this machine will rest on.
void print_summary(const ProfileOptions& options, const core::Json& document, int ranks) {
  const core::Json& device = document["device"];
  const core::Json& link = document["links"][0];
  const char* dtype = options.backend == Backend::cuda ? "bf16" : "fp32";
  fmt::print("wrote {}: best {} GEMM {:.1f} GFLOP/s, memory {:.1f} GB/s", options.out_path, dtype,
             device["peak_flops_per_s"][dtype].get<double>() / 1e9,
             device["memory_bandwidth_bytes_per_s"].get<double>() / 1e9);
  if (options.backend == Backend::cuda && ranks < 2) {
    fmt::print(", no link measured (one GPU)\n");
    return;
  }
  fmt::print(", send/recv {:.1f} GB/s and {:.1f} us latency\n", link["bandwidth_bytes_per_s"].get<double>() / 1e9,
             link["latency_s"].get<double>() * 1e6);
}

}  // namespace

void check_profile_options(const ProfileOptions& options) {
  require_usable(options.backend);
  if (options.backend == Backend::cuda && options.off_grid)
    throw InvalidInput("--off-grid checks the CPU grid's interpolation; with --backend cuda leave it out");
}

int run_profile(const ProfileOptions& options) {
  const bool gpu = options.backend == Backend::cuda;
  const int local_rank = node_local_rank();
  // The kernels first: the CUDA backend picks this rank's device, which NCCL then uses.
  std::unique_ptr<Kernels> kernels = make_kernels(options.backend, options.threads, local_rank);
  // A GPU shared by two ranks would measure neither its kernels nor NCCL (which refuses it).
  const std::optional<profile::GpuInfo> device = gpu ? std::optional(profile::describe_cuda_device()) : std::nullopt;
  if (device && local_rank >= device->devices)
    throw InvalidInput("--backend cuda profiles one GPU per rank, but this node has {} GPU(s) for more ranks; start "
                       "at most {} rank(s) per node",
                       device->devices, device->devices);
  // Idle ranks wait in idle_barrier(), which does not take the measuring rank's core.
  std::unique_ptr<Communicator> world_communicator = make_world_communicator(options.backend);
  Communicator& world = *world_communicator;
  // A CPU profile's only link figures come from its collectives; a GPU may be alone on its node.
  if (!gpu && world.size() < 2)
    throw InvalidInput("loom-exec profile needs at least 2 ranks to measure collectives (started with {})",
                       world.size());
  const bool root = world.rank() == 0;
  // Refused before a minute of measuring rather than after it.
  if (root) core::check_output_target(options.out_path);
  const profile::ProfileGrid grid = grid_for(options);
  profile::Measured measured;
  if (root) {
    profile::measure_gemms(*kernels, grid, measured);
    // Plans in fp32 need their own peak on a GPU, whose tables are bf16.
    if (gpu) profile::measure_gemm_peak(*kernels, ElementType::f32, grid.timing, measured);
    profile::measure_attention(*kernels, grid, measured);
    profile::measure_memory_kernels(*kernels, grid, measured);
  }
  world.idle_barrier();
  if (world.size() > 1)
    profile::measure_collectives(world, *kernels, [&] { world.idle_barrier(); }, grid, measured);
  const profile::HostInfo host = profile::describe_host();
  // The tables were timed with rank 0 alone busy; how much slower the same kernels run with as
  // many ranks busy as the cores hold (the off-grid check measures no tables to apply it to).
  std::optional<core::MeasuredLoad> load;
  const int64_t busy_ranks = std::min<int64_t>(world.size(), host.cores / std::max(1, options.threads));
  if (!gpu && !options.off_grid && busy_ranks >= 2) {
    load = profile::measure_load(world, *kernels, busy_ranks);
    if (root)
      fmt::print("load: the probe ran {:.1f} % slower with {} ranks busy than with one alone\n",
                 100.0 * (load->slowdown - 1.0), busy_ranks);
  }
  if (!root) return 0;

  const std::string name = options.name.empty()
                               ? fmt::format("{}-{}", to_string(options.backend), host.host_name)
                               : options.name;
  const profile::RunSettings run{name, options.quick, options.threads, world.size(), device, load};
  const core::Json document = profile::profile_document(measured, host, run);
  write_profile(document, options.out_path);
  print_summary(options, document, world.size());
  return 0;
}

}  // namespace loom::exec
