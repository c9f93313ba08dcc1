// `loom-exec profile`: rank 0 measures the kernels while the other ranks sleep, then every rank
// takes part in the collectives; rank 0 writes the profile. The measurements live in
// executor/profile/, one file each.

#include "executor/commands/profile_command.hpp"

#include "core/error.hpp"
#include "core/output_file.hpp"  // check_output_target, write_output_file
#include "core/profile.hpp"
#include "executor/comm/mpi_session.hpp"  // mpi_world
#include "executor/profile/document.hpp"
#include "executor/profile/grid.hpp"
#include "executor/profile/measure.hpp"

#include <fmt/format.h>
#include <unistd.h>


namespace loom::exec {
namespace {

void write_profile(const core::Json& document, const std::string& path) {
  core::profile_from_json(document, "the measured profile");  // what is written must read back
  core::write_output_file(path, document.dump(2) + "\n");
}

}  // namespace

int run_profile(const ProfileOptions& options) {
  // Idle ranks wait in idle_barrier(), which does not take the measuring rank's core.
  std::unique_ptr<Communicator> world_communicator = mpi_world();
  Communicator& world = *world_communicator;
  if (world.size() < 2)
    throw InvalidInput(
        "loom-exec profile needs at least 2 ranks to measure collectives (started with {})",
        world.size());
  const bool root = world.rank() == 0;
  // Refused before a minute of measuring rather than after it.
  if (root) core::check_output_target(options.out_path);
  const profile::ProfileGrid grid = options.off_grid ? profile::off_grid() : profile::profile_grid(options.quick);
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(options.threads);
  profile::Measured measured;
  if (root) {
    profile::measure_gemms(*kernels, grid, measured);
    profile::measure_attention(*kernels, grid, measured);
    profile::measure_memory_kernels(*kernels, grid, measured);
  }
  world.idle_barrier();
  profile::measure_collectives(world, [&] { world.idle_barrier(); }, grid, measured);
  if (!root) return 0;

  const profile::HostInfo host = profile::describe_host();
  const std::string name =
      options.name.empty() ? fmt::format("cpu-{}", host.host_name) : options.name;
  const core::Json document = profile::profile_document(
      measured, host, {name, options.quick, options.threads, world.size()});
  write_profile(document, options.out_path);
  const core::Json& device = document["device"];
  const core::Json& link = document["links"][0];
  fmt::print("wrote {}: best GEMM {:.1f} GFLOP/s, memory {:.1f} GB/s, send/recv {:.1f} GB/s",
             options.out_path, device["peak_flops_per_s"]["fp32"].get<double>() / 1e9,
             device["memory_bandwidth_bytes_per_s"].get<double>() / 1e9,
             link["bandwidth_bytes_per_s"].get<double>() / 1e9);
  fmt::print(" and {:.1f} us latency\n", link["latency_s"].get<double>() * 1e6);
  return 0;
}

}  // namespace loom::exec
