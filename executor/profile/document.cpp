#include "executor/profile/document.hpp"

#include "core/error.hpp"
#include "core/kernel_bytes.hpp"
#include "core/store.hpp"  // utc_now_iso8601

#include <fmt/format.h>
#include <Eigen/Core>

#include <algorithm>

namespace loom::exec::profile {
namespace {

double best_gemm_rate(const core::ProfileTables& tables) {
  double best = 0;
  for (const core::GemmSample& s : tables.gemm)
    best = std::max(best, 2.0 * double(s.m * s.n * s.k) / s.time_s);
  return best;
}

// The rows of one kernel or collective, smallest first: the largest is the one furthest from
// caches and latency, the smallest the one closest to latency alone.
template <typename Sample, typename Matches>
std::vector<const Sample*> by_size(const std::vector<Sample>& samples, Matches matches,
                                   std::string_view what) {
  std::vector<const Sample*> rows;
  for (const Sample& s : samples)
    if (matches(s)) rows.push_back(&s);
  if (rows.empty()) throw Error("the profile measured no {}", what);
  std::sort(rows.begin(), rows.end(),
            [](const Sample* x, const Sample* y) { return x->bytes < y->bytes; });
  return rows;
}

void add_spreads(core::Json& rows, const std::vector<double>& spreads) {
  for (size_t i = 0; i < spreads.size(); ++i) rows[i]["spread"] = spreads[i];
}

}  // namespace

core::Json profile_document(const Measured& measured, const HostInfo& host,
                            const RunSettings& run) {
  const core::ProfileTables& tables = measured.tables;
  core::Profile p;
  p.name = run.name;
  p.provenance = "measured";
  p.description = fmt::format(
      "{} ({} thread{} per rank), measured by loom-exec profile{}: the executor's CPU "
      "kernels (Eigen, fp32) and MPI collectives among {} ranks on one node",
      host.cpu_name, run.threads, run.threads == 1 ? "" : "s", run.quick ? " --quick" : "",
      run.ranks);
  p.source = fmt::format("host {}; {}; Eigen {}.{}.{}; {}; measured {}", host.host_name,
                         host.cpu_name, EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION,
                         EIGEN_MINOR_VERSION, host.mpi_library, core::utc_now_iso8601());

  p.device.name = host.cpu_name;
  p.device.memory_bytes = host.memory_bytes;
  // The CPU backend computes in fp32 whatever the plan's dtype: every dtype gets its peak.
  const double peak = best_gemm_rate(tables);
  for (core::DType dtype : {core::DType::fp32, core::DType::bf16, core::DType::fp16})
    p.device.peak_flops_per_s[dtype] = peak;
  const core::KernelSample& residual =
      *by_size(
           tables.kernels,
           [](const core::KernelSample& s) { return s.kernel == core::kernel_bytes::kResidual; },
           "residual add")
           .back();
  p.device.memory_bandwidth_bytes_per_s = double(residual.bytes) / residual.time_s;
  p.device.host_cores = host.cores;
  p.device.threads_per_rank = run.threads;
  p.device.compute_dtype = core::DType::fp32;

  const auto send_recv = by_size(
      tables.collectives,
      [](const core::CollectiveSample& s) { return s.collective == "send_recv"; }, "send_recv");
  const core::CollectiveSample &shortest = *send_recv.front(), &longest = *send_recv.back();
  p.links.push_back(
      {"intra-node", shortest.time_s, double(longest.bytes) / longest.time_s, 1.0,
       fmt::format("measured: send/recv between ranks 0 and 1, latency at {} B, bandwidth at {} B{}",
                   shortest.bytes, longest.bytes,
                   host.eager_limit_bytes
                       ? fmt::format("; eager limit {} B read from the MPI library (btl shared-memory eager_limit)",
                                     *host.eager_limit_bytes)
                       : ""),
       host.eager_limit_bytes});
  p.efficiency = {.gemm_max_fraction = 1.0,
                  .gemm_half_saturation_flops = 0.0,
                  .memory_bandwidth_fraction = 1.0,
                  .kernel_launch_s = 0.0,
                  .flash_forward_fraction = std::nullopt,  // measured attention tables of both backends
                  .flash_backward_fraction = std::nullopt,
                  .justification = "peaks are the best measured rates; the measured tables cover the GEMMs, "
                  "attention, kernels and collectives, so no efficiency is assumed"};
  p.tables = tables;

  core::Json document = core::to_json(p);
  core::Json& written = document["tables"];
  add_spreads(written["gemm"], measured.gemm_spread);
  add_spreads(written["attention"], measured.attention_spread);
  add_spreads(written["kernels"], measured.kernel_spread);
  add_spreads(written["collectives"], measured.collective_spread);
  return document;
}

}  // namespace loom::exec::profile
