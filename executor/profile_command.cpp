#include "executor/profile_command.hpp"

#include "core/error.hpp"
#include "core/profile.hpp"
#include "core/store.hpp"
#include "executor/comm/communicator.hpp"
#include "executor/comm/mpi_communicator.hpp"
#include "executor/kernels/kernels.hpp"

#include <Eigen/Core>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <thread>

namespace loom::exec {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median of `repeats` timed calls after one warm-up call; the spread is (max − min) / median.
std::pair<double, double> time_median(const std::function<void()>& call, int repeats) {
  call();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const double start = now_s();
    call();
    times.push_back(now_s() - start);
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  return {median, (times.back() - times.front()) / median};
}

Tensor filled(std::vector<int64_t> shape, float value) {
  Tensor t(std::move(shape));
  std::fill_n(t.data<float>(), t.numel(), value);
  return t;
}

std::string read_first_line_with(const std::string& file, const std::string& prefix) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) return line.substr(line.find(':') + 1);
  return "";
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  return s;
}

// GEMMs over the shapes transformer layers produce on a CPU rank: token rows m, output widths n
// and reduction depths k spanning the preset models' hidden and MLP sizes split by tp.
core::Json measure_gemms(Kernels& kernels, bool quick, double& best_flops) {
  const std::vector<int64_t> ms = quick ? std::vector<int64_t>{256, 1024, 4096} : std::vector<int64_t>{128, 512, 2048, 8192};
  const std::vector<int64_t> ns = quick ? std::vector<int64_t>{64, 256, 1024} : std::vector<int64_t>{64, 256, 1024, 4096};
  const std::vector<int64_t> ks = ns;
  core::Json rows = core::Json::array();
  for (int64_t m : ms)
    for (int64_t n : ns)
      for (int64_t k : ks) {
        Tensor a = filled({m, k}, 0.01f), b = filled({k, n}, 0.02f), c({m, n});
        const auto [time, spread] = time_median([&] { kernels.matmul(a, false, b, false, c); }, quick ? 3 : 5);
        best_flops = std::max(best_flops, 2.0 * double(m) * double(n) * double(k) / time);
        rows.push_back({{"m", m}, {"n", n}, {"k", k}, {"dtype", "fp32"}, {"time_s", time}, {"spread", spread}});
      }
  return rows;
}

// Memory-bound kernels by the bytes the simulator's op list charges them (simulator/ops.cpp).
core::Json measure_kernels(Kernels& kernels, bool quick, double& bandwidth) {
  core::Json rows = core::Json::array();
  const int64_t hidden = 256;
  for (int64_t rows_count : quick ? std::vector<int64_t>{256, 4096, 32768} : std::vector<int64_t>{256, 2048, 16384, 65536}) {
    const int64_t n = rows_count * hidden;
    Tensor x = filled({rows_count, hidden}, 0.5f), y({rows_count, hidden}), g = filled({hidden}, 1.0f), bt({hidden});
    Tensor mean({rows_count}), rstd({rows_count});
    auto add = [&](const char* kernel, double bytes, const std::function<void()>& call) {
      const auto [time, spread] = time_median(call, quick ? 3 : 5);
      rows.push_back({{"kernel", kernel}, {"bytes", int64_t(bytes)}, {"time_s", time}, {"spread", spread}});
      return bytes / time;
    };
    add("layernorm", 2.0 * double(n) * 4, [&] { kernels.layernorm_forward(x, g, bt, 1e-5f, y, mean, rstd); });
    add("gelu", 2.0 * double(n) * 4, [&] { kernels.gelu_forward(x, y); });
    // The largest size (run last) is beyond the caches: its rate stands for memory bandwidth.
    bandwidth = add("elementwise", 3.0 * double(n) * 4, [&] { kernels.add(x, x, y); });
    Tensor p = filled({n}, 0.1f), grad = filled({n}, 0.01f), m1 = filled({n}, 0.0f), v1 = filled({n}, 0.0f);
    add("adamw", 30.0 * double(n), [&] { kernels.adamw(p, grad, m1, v1, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1); });
  }
  return rows;
}

// Collectives over the whole world as nccl-tests counts them (bytes of the whole array).
core::Json measure_collectives(Communicator& world, bool quick, double& latency, double& bandwidth) {
  core::Json rows = core::Json::array();
  const int n = world.size();
  const int64_t largest = quick ? (int64_t(16) << 20) : (int64_t(256) << 20);
  std::vector<float> send(size_t(largest / 4), 1.0f), recv(size_t(largest / 4));
  if (world.rank() == 0)
    fmt::print("{:>14} {:>10} {:>12} {:>12} {:>12}   ({} ranks, in-node)\n", "collective", "size", "time", "algbw",
               "busbw", n);
  for (const char* collective : {"all_reduce", "all_gather", "reduce_scatter", "broadcast", "send_recv"}) {
    for (int64_t bytes = 1024; bytes <= largest; bytes *= 8) {
      const size_t count = size_t(bytes / 4);
      const std::string kind = collective;
      std::function<void()> call;
      if (kind == "all_reduce") call = [&] { world.all_reduce(send.data(), count, ReduceOp::sum); };
      if (kind == "all_gather") call = [&] { world.all_gather(send.data(), recv.data(), count / size_t(n)); };
      if (kind == "reduce_scatter") call = [&] { world.reduce_scatter(send.data(), recv.data(), count / size_t(n), ReduceOp::sum); };
      if (kind == "broadcast") call = [&] { world.broadcast(send.data(), count, 0); };
      if (kind == "send_recv") call = [&] {
        if (world.rank() == 0) world.send(send.data(), count, 1, 7);
        if (world.rank() == 1) world.recv(recv.data(), count, 0, 7);
        world.barrier();
      };
      world.barrier();
      auto [time, spread] = time_median(call, quick ? 3 : 5);
      double worst = time;  // the slowest rank's median is the collective's time
      std::vector<float> all(static_cast<size_t>(n));
      const float mine = float(time);
      world.all_gather(&mine, all.data(), 1);
      for (float t : all) worst = std::max(worst, double(t));
      const double algbw = double(bytes) / worst;
      const double factor = kind == "all_reduce" ? 2.0 * (n - 1) / n : (kind == "all_gather" || kind == "reduce_scatter") ? double(n - 1) / n : 1.0;
      if (world.rank() == 0) {
        fmt::print("{:>14} {:>10} {:>9.1f} µs {:>7.2f} GB/s {:>7.2f} GB/s\n", kind, bytes, worst * 1e6, algbw / 1e9,
                   algbw * factor / 1e9);
        rows.push_back({{"collective", kind}, {"level", "intra-node"}, {"ranks", kind == "send_recv" ? 2 : n},
                        {"bytes", bytes}, {"time_s", worst}, {"spread", spread}});
        if (kind == "send_recv" && bytes == 1024) latency = worst;
        if (kind == "send_recv") bandwidth = std::max(bandwidth, algbw);
      }
    }
  }
  return rows;
}

}  // namespace

int run_profile(const ProfileOptions& options) {
  std::unique_ptr<Communicator> world = mpi_world();
  if (world->size() < 2)
    throw InvalidInput("loom-exec profile needs at least 2 ranks to measure collectives (started with {})", world->size());
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(options.threads);
  double best_flops = 0, bandwidth = 0, latency = 0, link_bandwidth = 0;
  core::Json gemm, kernel_rows;
  if (world->rank() == 0) {
    gemm = measure_gemms(*kernels, options.quick, best_flops);
    kernel_rows = measure_kernels(*kernels, options.quick, bandwidth);
  }
  world->barrier();
  const core::Json collectives = measure_collectives(*world, options.quick, latency, link_bandwidth);
  if (world->rank() != 0) return 0;

  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  const std::string cpu = trim(read_first_line_with("/proc/cpuinfo", "model name"));
  const int64_t memory_kib = std::stoll(trim(read_first_line_with("/proc/meminfo", "MemTotal")));
  char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(mpi_version, &length);
  const std::string name = options.name.empty() ? fmt::format("cpu-{}", host) : options.name;
  const core::Json profile = {
      {"format", "loom-profile"},
      {"version", 1},
      {"name", name},
      {"provenance", "measured"},
      {"description", fmt::format("{} ({} threads per rank), measured by loom-exec profile{}: the executor's CPU "
                                  "kernels (Eigen, fp32) and MPI collectives among {} ranks on one node",
                                  cpu, options.threads, options.quick ? " --quick" : "", world->size())},
      {"source", fmt::format("host {}; {}; Eigen {}.{}.{}; {}; measured {}", host, cpu, EIGEN_WORLD_VERSION,
                             EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, trim(std::string(mpi_version).substr(0, 60)),
                             core::utc_now_iso8601())},
      {"device",
       {{"name", cpu},
        {"memory_bytes", memory_kib * 1024},
        // The CPU backend computes in fp32 whatever the plan's dtype: every dtype gets the same peak.
        {"peak_flops_per_s", {{"fp32", best_flops}, {"bf16", best_flops}, {"fp16", best_flops}}},
        {"memory_bandwidth_bytes_per_s", bandwidth}}},
      {"links", core::Json::array({{{"level", "intra-node"},
                                    {"latency_s", latency},
                                    {"bandwidth_bytes_per_s", link_bandwidth},
                                    {"bus_bandwidth_fraction", 1.0},
                                    {"justification", "measured: 1 KiB and largest send/recv between ranks 0 and 1"}}})},
      {"efficiency",
       {{"gemm_max_fraction", 1.0},
        {"gemm_half_saturation_flops", 0.0},
        {"memory_bandwidth_fraction", 1.0},
        {"kernel_launch_s", 0.0},
        {"justification", "peaks are the best measured rates; the measured tables cover the GEMMs, kernels and "
                          "collectives, so no efficiency is assumed"}}},
      {"tables", {{"gemm", gemm}, {"kernels", kernel_rows}, {"collectives", collectives}}}};
  core::profile_from_json(profile, "the measured profile");  // what we write must read back
  std::ofstream out(options.out_path, std::ios::binary | std::ios::trunc);
  if (!(out << profile.dump(2) << "\n") || !out.flush()) throw IoError("cannot write the profile to '{}'", options.out_path);
  fmt::print("wrote {} (best GEMM {:.1f} GFLOP/s, memory {:.1f} GB/s, send/recv {:.1f} GB/s)\n", options.out_path,
             best_flops / 1e9, bandwidth / 1e9, link_bandwidth / 1e9);
  return 0;
}

}  // namespace loom::exec
