// The cost model against its own formulas on hand-built profiles: the efficiency model where no
// table applies, the ring collectives, and log-space interpolation in measured tables.

#include "simulator/cost_model.hpp"
#include "../relative_expectation.hpp"

#include "core/error.hpp"
#include "simulator/interpolation.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace loom::sim {
namespace {

using core::DType;

constexpr double kPeak = 100e12;
constexpr double kMemoryBandwidth = 1e12;
constexpr double kGemmMax = 0.8;
constexpr double kHalfSaturation = 1e9;
constexpr double kMemoryFraction = 0.5;
constexpr double kLaunch = 3e-6;
constexpr double kIntraBandwidth = 200e9, kIntraFraction = 0.8, kIntraLatency = 2e-6;
constexpr double kInterBandwidth = 25e9, kInterFraction = 0.9, kInterLatency = 5e-6;

core::Profile hand_profile() {
  core::Profile p;
  p.name = "hand-built";
  p.provenance = "datasheet";
  p.device.name = "test device";
  p.device.memory_bytes = int64_t(80) << 30;
  p.device.peak_flops_per_s = {{DType::bf16, kPeak}, {DType::fp32, kPeak / 16}};
  p.device.memory_bandwidth_bytes_per_s = kMemoryBandwidth;
  p.links = {{"intra-node", kIntraLatency, kIntraBandwidth, kIntraFraction, "", {}},
             {"inter-node", kInterLatency, kInterBandwidth, kInterFraction, "", {}}};
  p.efficiency.gemm_max_fraction = kGemmMax;
  p.efficiency.gemm_half_saturation_flops = kHalfSaturation;
  p.efficiency.memory_bandwidth_fraction = kMemoryFraction;
  p.efficiency.kernel_launch_s = kLaunch;
  return p;
}

using loom::testing::expect_relative;
// Closed forms against the same arithmetic done another way: equal up to rounding.
constexpr double kClosedFormTolerance = 1e-12;

// ---- Without tables: the profile's efficiency model over its peaks. ----

TEST(CostModelEfficiency, ComputeBoundGemmFollowsTheSaturationCurve) {
  const CostModel costs(hand_profile(), DType::bf16);
  EXPECT_EQ(costs.peak_flops_per_s(), kPeak);
  for (int64_t size : {1024, 4096, 8192}) {
    const double flops = 2.0 * double(size) * double(size) * double(size);
    const double expected = flops / (kPeak * kGemmMax * flops / (flops + kHalfSaturation)) + kLaunch;
    expect_relative(costs.gemm_s(size, size, size), expected, kClosedFormTolerance);
  }
  // batch multiplies the FLOPs.
  const double flops = 2.0 * 2048.0 * 2048.0 * 1024.0 * 16.0;
  expect_relative(costs.gemm_s(2048, 2048, 1024, 16),
                  flops / (kPeak * kGemmMax * flops / (flops + kHalfSaturation)) + kLaunch, kClosedFormTolerance);
}

TEST(CostModelEfficiency, GemmThroughputGrowsWithSizeButNeverPassesTheCeiling) {
  const CostModel costs(hand_profile(), DType::bf16);
  double previous = 0;
  for (int64_t size : {256, 512, 1024, 2048, 4096, 16384}) {
    const double flops = 2.0 * double(size) * double(size) * double(size);
    const double throughput = flops / (costs.gemm_s(size, size, size) - kLaunch);
    EXPECT_GT(throughput, previous) << size;
    EXPECT_LE(throughput, kPeak * kGemmMax) << size;
    previous = throughput;
  }
}

TEST(CostModelEfficiency, SkinnyGemmIsMemoryBound) {
  const CostModel costs(hand_profile(), DType::bf16);
  const int64_t m = 1, n = 8192, k = 8192;
  const double bytes = double(m * k + k * n + m * n) * 2.0;
  const double flops = 2.0 * double(m * n * k);
  const double compute = flops / (kPeak * kGemmMax * flops / (flops + kHalfSaturation));
  const double memory = bytes / (kMemoryBandwidth * kMemoryFraction);
  ASSERT_GT(memory, compute);
  expect_relative(costs.gemm_s(m, n, k), memory + kLaunch, kClosedFormTolerance);
}

TEST(CostModelEfficiency, Fp32UsesItsOwnPeak) {
  const CostModel bf16(hand_profile(), DType::bf16);
  const CostModel fp32(hand_profile(), DType::fp32);
  EXPECT_EQ(fp32.peak_flops_per_s(), kPeak / 16);
  EXPECT_GT(fp32.gemm_s(4096, 4096, 4096), 10 * bf16.gemm_s(4096, 4096, 4096));
}

TEST(CostModelEfficiency, MissingPeakForTheDtypeIsRefused) {
  core::Profile profile = hand_profile();
  profile.device.peak_flops_per_s.erase(DType::fp16);
  EXPECT_THROW(CostModel(profile, DType::fp16), InvalidInput);
}

TEST(CostModelEfficiency, ElementwiseIsBandwidthBound) {
  const CostModel costs(hand_profile(), DType::bf16);
  for (double bytes : {1e3, 1e6, 1e9})
    for (std::string_view kernel : {"layernorm", "gelu", "softmax", "elementwise"})
      expect_relative(costs.elementwise_s(kernel, bytes), bytes / (kMemoryBandwidth * kMemoryFraction) + kLaunch, kClosedFormTolerance);
}

TEST(CostModelEfficiency, RingAllReduceWithinANode) {
  const CostModel costs(hand_profile(), DType::bf16);
  const double busbw = kIntraBandwidth * kIntraFraction;
  for (int64_t n : {2, 4, 8}) {
    const double bytes = 256e6;
    const double expected = 2.0 * double(n - 1) * kIntraLatency + 2.0 * double(n - 1) / double(n) * bytes / busbw;
    expect_relative(costs.collective_s(Collective::all_reduce, bytes, {n, n}), expected, kClosedFormTolerance);
  }
}

TEST(CostModelEfficiency, AllGatherAndReduceScatterMoveHalfOfAnAllReduce) {
  const CostModel costs(hand_profile(), DType::bf16);
  const double busbw = kIntraBandwidth * kIntraFraction;
  for (int64_t n : {2, 4, 8}) {
    const double bytes = 64e6;
    const double expected = double(n - 1) * kIntraLatency + double(n - 1) / double(n) * bytes / busbw;
    expect_relative(costs.collective_s(Collective::all_gather, bytes, {n, n}), expected, kClosedFormTolerance);
    expect_relative(costs.collective_s(Collective::reduce_scatter, bytes, {n, n}), expected, kClosedFormTolerance);
  }
}

TEST(CostModelEfficiency, PointToPointUsesTheLinkItCrosses) {
  const CostModel costs(hand_profile(), DType::bf16);
  const double bytes = 32e6;
  expect_relative(costs.point_to_point_s(bytes, false), kIntraLatency + bytes / (kIntraBandwidth * kIntraFraction), kClosedFormTolerance);
  expect_relative(costs.point_to_point_s(bytes, true), kInterLatency + bytes / (kInterBandwidth * kInterFraction), kClosedFormTolerance);
}

TEST(CostModelEfficiency, GroupAcrossNodesUsesInterNodeBandwidthPerMemberCappedByIntra) {
  const CostModel costs(hand_profile(), DType::bf16);
  const double bytes = 1e9;
  // 16 ranks, 2 per node: two network ports per node drive the ring.
  const GroupPlacement sparse{16, 2};
  ASSERT_TRUE(sparse.crosses_nodes());
  const double sparse_busbw = kInterBandwidth * kInterFraction * 2;
  expect_relative(costs.collective_s(Collective::all_reduce, bytes, sparse),
                  2.0 * 15 * kInterLatency + 2.0 * 15 / 16 * bytes / sparse_busbw, kClosedFormTolerance);
  // 16 ranks, 8 per node: 8 ports would give 180 GB/s, more than NVLink's 160 GB/s bus bandwidth.
  const GroupPlacement dense{16, 8};
  const double intra_busbw = kIntraBandwidth * kIntraFraction;
  ASSERT_GT(kInterBandwidth * kInterFraction * 8, intra_busbw);
  expect_relative(costs.collective_s(Collective::all_reduce, bytes, dense),
                  2.0 * 15 * kInterLatency + 2.0 * 15 / 16 * bytes / intra_busbw, kClosedFormTolerance);
}

TEST(CostModelEfficiency, GroupAcrossNodesWithoutAnInterNodeLinkIsRefused) {
  core::Profile profile = hand_profile();
  profile.links.pop_back();
  const CostModel costs(profile, DType::bf16);
  EXPECT_THROW(costs.collective_s(Collective::all_reduce, 1e6, {16, 8}), InvalidInput);
  EXPECT_GT(costs.collective_s(Collective::all_reduce, 1e6, {8, 8}), 0);
}

TEST(CostModelEfficiency, GroupOfOneOrNothingToMoveCostsNothing) {
  const CostModel costs(hand_profile(), DType::bf16);
  for (Collective c : {Collective::all_reduce, Collective::all_gather, Collective::reduce_scatter,
                       Collective::broadcast, Collective::send_recv}) {
    EXPECT_EQ(costs.collective_s(c, 1e9, {1, 1}), 0.0) << to_string(c);
    EXPECT_EQ(costs.collective_s(c, 0.0, {8, 8}), 0.0) << to_string(c);
  }
}

TEST(CostModelEfficiency, OpDispatchesByKind) {
  const CostModel costs(hand_profile(), DType::bf16);
  Op gemm;
  gemm.kind = OpKind::gemm;
  gemm.m = 512, gemm.n = 1024, gemm.k = 2048, gemm.batch = 3;
  EXPECT_EQ(costs.op_s(gemm, {4, 4}), costs.gemm_s(512, 1024, 2048, 3));
  Op norm;
  norm.kind = OpKind::elementwise;
  norm.kernel = "layernorm";
  norm.bytes = 1e7;
  EXPECT_EQ(costs.op_s(norm, {4, 4}), costs.elementwise_s("layernorm", 1e7));
  Op gather;
  gather.kind = OpKind::collective;
  gather.collective = Collective::all_gather;
  gather.bytes = 1e7;
  EXPECT_EQ(costs.op_s(gather, {4, 4}), costs.collective_s(Collective::all_gather, 1e7, {4, 4}));
  EXPECT_EQ(costs.op_s(gather, {1, 1}), 0.0);
}

TEST(BusFactor, FollowsNcclTests) {
  for (int64_t n : {2, 4, 8, 64}) {
    const double d = double(n);
    EXPECT_DOUBLE_EQ(bus_factor(Collective::all_reduce, n), 2 * (d - 1) / d);
    EXPECT_DOUBLE_EQ(bus_factor(Collective::all_gather, n), (d - 1) / d);
    EXPECT_DOUBLE_EQ(bus_factor(Collective::reduce_scatter, n), (d - 1) / d);
    EXPECT_DOUBLE_EQ(bus_factor(Collective::broadcast, n), 1.0);
    EXPECT_DOUBLE_EQ(bus_factor(Collective::send_recv, n), 1.0);
  }
  EXPECT_DOUBLE_EQ(bus_factor(Collective::all_reduce, 8), 1.75);
}

// ---- With measured tables. ----

// Throughput (FLOP/s) at grid point (m, n, k), all different so that interpolation shows.
double grid_throughput(int64_t m, int64_t n, int64_t k) {
  return 50e12 + (m == 4096 ? 20e12 : 0) + (n == 4096 ? 10e12 : 0) + (k == 4096 ? 5e12 : 0);
}

double gemm_flops(double m, double n, double k) { return 2.0 * m * n * k; }

core::Profile profile_with_gemm_grid(double launch_s) {
  core::Profile profile = hand_profile();
  profile.efficiency.kernel_launch_s = launch_s;
  for (int64_t m : {1024, 4096})
    for (int64_t n : {1024, 4096})
      for (int64_t k : {1024, 4096})
        profile.tables.gemm.push_back(
            {m, n, k, DType::bf16, gemm_flops(double(m), double(n), double(k)) / grid_throughput(m, n, k)});
  // A sample for another dtype must not leak into bf16.
  profile.tables.gemm.push_back({2048, 2048, 2048, DType::fp32, 1.0});
  return profile;
}

TEST(CostModelTables, GemmSampleReproducesItsOwnTime) {
  const core::Profile profile = profile_with_gemm_grid(0.0);
  const CostModel costs(profile, DType::bf16);
  for (const core::GemmSample& s : profile.tables.gemm)
    if (s.dtype == DType::bf16) expect_relative(costs.gemm_s(s.m, s.n, s.k), s.time_s, 1e-9);
}

TEST(CostModelTables, MeasuredGemmTimeIsNotChargedALaunchOnTop) {
  const core::Profile profile = profile_with_gemm_grid(kLaunch);
  const CostModel costs(profile, DType::bf16);
  for (const core::GemmSample& s : profile.tables.gemm)
    if (s.dtype == DType::bf16) expect_relative(costs.gemm_s(s.m, s.n, s.k), s.time_s, 1e-9);
}

TEST(CostModelTables, GemmBetweenGridPointsLiesBetweenItsNeighbours) {
  const CostModel costs(profile_with_gemm_grid(0.0), DType::bf16);
  double lowest = 1e300, highest = 0;
  for (int64_t m : {1024, 4096})
    for (int64_t n : {1024, 4096})
      for (int64_t k : {1024, 4096}) {
        lowest = std::min(lowest, grid_throughput(m, n, k));
        highest = std::max(highest, grid_throughput(m, n, k));
      }
  for (auto [m, n, k] : {std::tuple{2048, 2048, 2048}, std::tuple{1500, 3000, 2048}, std::tuple{4000, 1100, 1024}}) {
    const double throughput = gemm_flops(m, n, k) / costs.gemm_s(m, n, k);
    EXPECT_GT(throughput, lowest) << m << "×" << n << "×" << k;
    EXPECT_LT(throughput, highest) << m << "×" << n << "×" << k;
  }
  // Along one edge (n = k = 1024) only m varies: between the two samples on that edge, and at
  // the geometric middle exactly their geometric mean (linear in log space).
  const double at_middle = gemm_flops(2048, 1024, 1024) / costs.gemm_s(2048, 1024, 1024);
  expect_relative(at_middle, std::sqrt(grid_throughput(1024, 1024, 1024) * grid_throughput(4096, 1024, 1024)), 1e-9);
}

TEST(CostModelTables, GemmTableWinsOverTheEfficiencyModel) {
  const CostModel tabled(profile_with_gemm_grid(0.0), DType::bf16);
  const CostModel modelled(hand_profile(), DType::bf16);
  EXPECT_NE(tabled.gemm_s(4096, 4096, 4096), modelled.gemm_s(4096, 4096, 4096));
  // Without bf16 samples the table is not used for bf16.
  core::Profile fp32_only = hand_profile();
  fp32_only.tables.gemm.push_back({2048, 2048, 2048, DType::fp32, 1.0});
  EXPECT_EQ(CostModel(fp32_only, DType::bf16).gemm_s(4096, 4096, 4096), modelled.gemm_s(4096, 4096, 4096));
}

TEST(CostModelTables, KernelCurveReproducesSamplesAndInterpolatesLogLog) {
  core::Profile profile = hand_profile();
  profile.tables.kernels = {{"layernorm", 1 << 20, 10e-6}, {"layernorm", 1 << 24, 40e-6}, {"layernorm", 1 << 28, 400e-6}};
  const CostModel costs(profile, DType::bf16);
  for (const core::KernelSample& s : profile.tables.kernels)
    expect_relative(costs.elementwise_s("layernorm", double(s.bytes)), s.time_s, 1e-9);
  // Geometric middle of two samples: the geometric mean of their times.
  expect_relative(costs.elementwise_s("layernorm", double(1 << 22)), std::sqrt(10e-6 * 40e-6), 1e-9);
  expect_relative(costs.elementwise_s("layernorm", double(1 << 26)), std::sqrt(40e-6 * 400e-6), 1e-9);
  // Beyond the largest sample: its throughput carries on (time ∝ bytes).
  expect_relative(costs.elementwise_s("layernorm", double(1LL << 30)), 4 * 400e-6, 1e-9);
  // Below the smallest: the latency floor.
  expect_relative(costs.elementwise_s("layernorm", 1024.0), 10e-6, 1e-9);
  // Other kernels still use the efficiency model.
  expect_relative(costs.elementwise_s("gelu", 1e6), 1e6 / (kMemoryBandwidth * kMemoryFraction) + kLaunch, kClosedFormTolerance);
}

core::Profile profile_with_all_reduce_table() {
  core::Profile profile = hand_profile();
  profile.tables.collectives = {
      {"all_reduce", "intra-node", 8, 1 << 20, 30e-6},
      {"all_reduce", "intra-node", 8, 1 << 26, 500e-6},
      {"all_reduce", "intra-node", 8, 1 << 30, 7e-3},
      {"all_reduce", "intra-node", 2, 1 << 26, 300e-6},
  };
  return profile;
}

TEST(CostModelTables, CollectiveTableReproducesMeasuredTimes) {
  const core::Profile profile = profile_with_all_reduce_table();
  const CostModel costs(profile, DType::bf16);
  for (const core::CollectiveSample& s : profile.tables.collectives)
    expect_relative(costs.collective_s(Collective::all_reduce, double(s.bytes), {s.ranks, s.ranks}), s.time_s, 1e-9);
  // Between two measured sizes: the bus bandwidth interpolates in log space, so the time lies
  // between the neighbours' times.
  const double middle = costs.collective_s(Collective::all_reduce, double(1 << 23), {8, 8});
  EXPECT_GT(middle, 30e-6);
  EXPECT_LT(middle, 500e-6);
}

TEST(CostModelTables, CollectiveTableCarriesBusBandwidthToOtherRankCounts) {
  const CostModel costs(profile_with_all_reduce_table(), DType::bf16);
  // 6 ranks: the nearest measured rank count (in ratio) is 8; its bus bandwidth carries over.
  const double bytes = double(1 << 26);
  const double busbw8 = bytes / 500e-6 * bus_factor(Collective::all_reduce, 8);
  expect_relative(costs.collective_s(Collective::all_reduce, bytes, {6, 6}),
                  bytes * bus_factor(Collective::all_reduce, 6) / busbw8, 1e-9);
}

TEST(CostModelTables, CollectiveTableAppliesOnlyToItsCollectiveAndLevel) {
  const CostModel tabled(profile_with_all_reduce_table(), DType::bf16);
  const CostModel modelled(hand_profile(), DType::bf16);
  const double bytes = double(1 << 26);
  EXPECT_EQ(tabled.collective_s(Collective::all_gather, bytes, {8, 8}),
            modelled.collective_s(Collective::all_gather, bytes, {8, 8}));
  EXPECT_EQ(tabled.collective_s(Collective::all_reduce, bytes, {16, 8}),
            modelled.collective_s(Collective::all_reduce, bytes, {16, 8}));
}

TEST(CostModelTables, CollectiveBeyondTheLargestMeasuredSizeStaysBandwidthBound) {
  const CostModel costs(profile_with_all_reduce_table(), DType::bf16);
  const double largest = double(1 << 30);
  // Twice the largest measured message takes about twice as long (bandwidth-bound).
  expect_relative(costs.collective_s(Collective::all_reduce, 2 * largest, {8, 8}), 2 * 7e-3, 1e-9);
  // A message far below the smallest measured one costs no less than the latency floor measured.
  EXPECT_GE(costs.collective_s(Collective::all_reduce, 1024.0, {8, 8}), 30e-6 * (1 - 1e-9));
}

// ---- The interpolation primitives. ----

TEST(LogLogCurve, ThroughPointsLinearInLogSpace) {
  LogLogCurve curve;
  EXPECT_TRUE(curve.empty());
  curve.add(1e6, 2.0);  // out of order on purpose
  curve.add(1e3, 1.0);
  curve.add(1e9, 50.0);
  EXPECT_FALSE(curve.empty());
  expect_relative(curve(1e3), 1.0, kClosedFormTolerance);
  expect_relative(curve(1e6), 2.0, kClosedFormTolerance);
  expect_relative(curve(1e9), 50.0, kClosedFormTolerance);
  // log y is linear in log x between neighbours: at x = 1e4 (1/3 of the way) y = 2^(1/3).
  expect_relative(curve(1e4), std::cbrt(2.0), 1e-12);
  expect_relative(curve(std::sqrt(1e6 * 1e9)), std::sqrt(2.0 * 50.0), 1e-12);
}

TEST(LogLogCurve, BeyondTheEdges) {
  LogLogCurve curve;
  curve.add(100, 5.0);
  curve.add(1000, 20.0);
  // Below the smallest x: flat (latency-bound).
  EXPECT_DOUBLE_EQ(curve(1), 5.0);
  EXPECT_DOUBLE_EQ(curve(50), 5.0);
  // Beyond the largest x: y/x of the largest sample carries on (bandwidth-bound).
  expect_relative(curve(2000), 40.0, kClosedFormTolerance);
  expect_relative(curve(1e6), 20.0 * 1000, kClosedFormTolerance);
}

TEST(LogLogCurve, SinglePoint) {
  LogLogCurve curve;
  curve.add(10, 3.0);
  EXPECT_DOUBLE_EQ(curve(10), 3.0);
  EXPECT_DOUBLE_EQ(curve(1), 3.0);
  expect_relative(curve(40), 12.0, kClosedFormTolerance);
}

TEST(GemmTable, FullGridIsTrilinearInLogSpaceAndHeldBeyondItsEdges) {
  GemmTable table;
  EXPECT_TRUE(table.empty());
  for (int64_t m : {1024, 4096})
    for (int64_t n : {1024, 4096})
      for (int64_t k : {1024, 4096})
        table.add(m, n, k, gemm_flops(double(m), double(n), double(k)) / grid_throughput(m, n, k));
  EXPECT_FALSE(table.empty());
  for (int64_t m : {1024, 4096})
    for (int64_t n : {1024, 4096})
      for (int64_t k : {1024, 4096})
        expect_relative(table.time_s(m, n, k), gemm_flops(m, n, k) / grid_throughput(m, n, k), 1e-12);
  // Centre of the grid in log space: the geometric mean of all eight throughputs.
  double log_sum = 0;
  for (int64_t m : {1024, 4096})
    for (int64_t n : {1024, 4096})
      for (int64_t k : {1024, 4096}) log_sum += std::log(grid_throughput(m, n, k));
  expect_relative(table.time_s(2048, 2048, 2048), gemm_flops(2048, 2048, 2048) / std::exp(log_sum / 8), 1e-12);
  // Beyond the edges the edge's throughput is held: time ∝ FLOPs.
  expect_relative(table.time_s(16384, 4096, 4096), gemm_flops(16384, 4096, 4096) / grid_throughput(4096, 4096, 4096),
                  1e-12);
  expect_relative(table.time_s(64, 1024, 1024), gemm_flops(64, 1024, 1024) / grid_throughput(1024, 1024, 1024), 1e-12);
  expect_relative(table.time_s(8192, 512, 1024),
                  gemm_flops(8192, 512, 1024) / grid_throughput(4096, 1024, 1024), 1e-12);
}

TEST(GemmTable, ScatteredSamplesReproduceThemselvesAndStayWithinTheirRange) {
  GemmTable table;
  const std::vector<std::tuple<int64_t, int64_t, int64_t, double>> samples = {
      {512, 512, 512, 20e12}, {2048, 768, 3072, 60e12}, {8192, 8192, 8192, 90e12}, {4096, 1024, 256, 40e12},
      {128, 4096, 4096, 30e12}};
  for (const auto& [m, n, k, throughput] : samples) table.add(m, n, k, gemm_flops(m, n, k) / throughput);
  for (const auto& [m, n, k, throughput] : samples)
    expect_relative(table.time_s(m, n, k), gemm_flops(m, n, k) / throughput, 1e-12);
  // Inverse-distance weighting: a weighted mean, never outside the samples' range.
  for (auto [m, n, k] : {std::tuple{1000, 1000, 1000}, std::tuple{100000, 10, 10}, std::tuple{3000, 3000, 3000}}) {
    const double throughput = gemm_flops(m, n, k) / table.time_s(m, n, k);
    EXPECT_GE(throughput, 20e12 * (1 - 1e-12));
    EXPECT_LE(throughput, 90e12 * (1 + 1e-12));
  }
}

}  // namespace
}  // namespace loom::sim
