#include "executor/profile/document.hpp"

#include "core/error.hpp"
#include "core/kernel_bytes.hpp"
#include "core/store.hpp"  // utc_now_iso8601

#include <fmt/format.h>
#include <Eigen/Core>

#include <algorithm>

namespace loom::exec::profile {
namespace {

// The rows of one kernel or collective, smallest first: the largest is the one furthest from
// caches and latency, the smallest the one closest to latency alone.
template <typename Sample, typename Matches>
std::vector<const Sample*> by_size(const std::vector<Sample>& samples, Matches matches, std::string_view what) {
  std::vector<const Sample*> rows;
  for (const Sample& s : samples)
    if (matches(s)) rows.push_back(&s);
  if (rows.empty()) throw Error("the profile measured no {}", what);
  std::sort(rows.begin(), rows.end(), [](const Sample* x, const Sample* y) { return x->bytes < y->bytes; });
  return rows;
}

std::vector<const core::KernelSample*> residual_rows(const core::ProfileTables& tables) {
  return by_size(
      tables.kernels, [](const core::KernelSample& s) { return s.kernel == core::kernel_bytes::kResidual; },
      "residual add");
}

void add_spreads(core::Json& rows, const std::vector<double>& spreads) {
  for (size_t i = 0; i < spreads.size(); ++i) rows[i]["spread"] = spreads[i];
}

void describe_cpu(core::Profile& p, const Measured& measured, const HostInfo& host, const RunSettings& run) {
  p.description = fmt::format(
      "{} ({} thread{} per rank), measured by loom-exec profile{}: the executor's CPU kernels (Eigen, fp32) and MPI "
      "collectives among {} ranks on one node",
      host.cpu_name, run.threads, run.threads == 1 ? "" : "s", run.quick ? " --quick" : "", run.ranks);
  p.source = fmt::format("host {}; {}; Eigen {}.{}.{}; {}; measured {}", host.host_name, host.cpu_name,
                         EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, host.mpi_library,
                         core::utc_now_iso8601());
  p.device.name = host.cpu_name;
  p.device.memory_bytes = host.memory_bytes;
  // The CPU backend computes in fp32 whatever the plan's dtype: every dtype gets its peak.
  const double peak = measured.gemm_peak_flops_per_s.at(core::DType::fp32);
  for (core::DType dtype : {core::DType::fp32, core::DType::bf16, core::DType::fp16})
    p.device.peak_flops_per_s[dtype] = peak;
  p.device.host_cores = host.cores;
  p.device.threads_per_rank = run.threads;
  p.device.measured_load = run.load;
  p.device.compute_dtype = core::DType::fp32;
}

// A GPU computes in the plan's dtype (bf16 mixed precision, or fp32): each measured dtype gets
// its own peak, and fp16, which the executor refuses on CUDA, none. GPUs share no cores.
void describe_gpu(core::Profile& p, const Measured& measured, const HostInfo& host, const RunSettings& run) {
  const GpuInfo& gpu = *run.gpu;
  p.description = fmt::format(
      "{}, measured by loom-exec profile --backend cuda{}: the executor's CUDA kernels (cuBLASLt GEMMs and tables in "
      "bf16 mixed precision, an fp32 GEMM peak){}",
      gpu.name, run.quick ? " --quick" : "",
      run.ranks > 1 ? fmt::format(" and NCCL collectives among {} GPUs on one node", run.ranks) : "");
  p.source = fmt::format("host {}; {}; {}; {}; measured {}", host.host_name, gpu.name, gpu.software, host.mpi_library,
                         core::utc_now_iso8601());
  p.device.name = gpu.name;
  p.device.memory_bytes = gpu.memory_bytes;
  p.device.peak_flops_per_s = measured.gemm_peak_flops_per_s;
}

core::LinkSpec measured_link(const core::ProfileTables& tables, const HostInfo& host, bool gpu) {
  const auto send_recv = by_size(
      tables.collectives, [](const core::CollectiveSample& s) { return s.collective == "send_recv"; }, "send_recv");
  const core::CollectiveSample &shortest = *send_recv.front(), &longest = *send_recv.back();
  const bool eager_known = !gpu && host.eager_limit_bytes;
  return {"intra-node", shortest.time_s, double(longest.bytes) / longest.time_s, 1.0,
          fmt::format("measured: {} send/recv between ranks 0 and 1, latency at {} B, bandwidth at {} B{}",
                      gpu ? "NCCL" : "MPI", shortest.bytes, longest.bytes,
                      eager_known ? fmt::format("; eager limit {} B read from the MPI library (btl shared-memory "
                                                "eager_limit)",
                                                *host.eager_limit_bytes)
                                  : ""),
          eager_known ? host.eager_limit_bytes : std::nullopt};
}

// One GPU has no link, but a profile needs an intra-node one: the device's own memory (its
// largest residual add's rate, its smallest one's time) stands in, and says so.
core::LinkSpec stand_in_link(const core::ProfileTables& tables) {
  const auto residual = residual_rows(tables);
  const core::KernelSample &shortest = *residual.front(), &longest = *residual.back();
  return {"intra-node", shortest.time_s, double(longest.bytes) / longest.time_s, 1.0,
          "NOT MEASURED: profiled on one GPU, which has no link; the device's own memory stands in (bandwidth of its "
          "largest residual add, latency of its smallest), so plans of several GPUs simulated with this profile are "
          "optimistic: profile with --ranks 2 or more (one GPU each) to measure the link",
          std::nullopt};
}

}  // namespace

core::Json profile_document(const Measured& measured, const HostInfo& host, const RunSettings& run) {
  const core::ProfileTables& tables = measured.tables;
  core::Profile p;
  p.name = run.name;
  p.provenance = "measured";
  if (run.gpu) describe_gpu(p, measured, host, run);
  else describe_cpu(p, measured, host, run);
  const core::KernelSample& residual = *residual_rows(tables).back();
  p.device.memory_bandwidth_bytes_per_s = double(residual.bytes) / residual.time_s;
  const bool gpu = run.gpu.has_value();
  p.links.push_back(gpu && run.ranks < 2 ? stand_in_link(tables) : measured_link(tables, host, gpu));
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
  if (!measured.collective_spread.empty()) add_spreads(written["collectives"], measured.collective_spread);
  return document;
}

}  // namespace loom::exec::profile
