// The cost model on the tables a measured profile adds: GEMMs by operand layout, attention as
// one measured unit, backward kernels, kernels a backend may not run, Llama's kernels, ranks
// sharing CPU cores and devices that compute in one type only.

#include "simulator/cost_model.hpp"
#include "../relative_expectation.hpp"
#include "simulator/prediction.hpp"

#include "core/default_plan.hpp"
#include "core/kernel_bytes.hpp"
#include "core/model_presets.hpp"
#include "simulator/step_costs.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace loom::sim {
namespace {

using core::DType;
using core::GemmLayout;
namespace kb = core::kernel_bytes;

core::Profile cpu_like_profile() {
  core::Profile p;
  p.name = "cpu-like";
  p.provenance = "measured";
  p.device.name = "test CPU";
  p.device.memory_bytes = int64_t(16) << 30;
  p.device.peak_flops_per_s = {{DType::fp32, 100e9}, {DType::bf16, 100e9}};
  p.device.memory_bandwidth_bytes_per_s = 10e9;
  p.links = {{"intra-node", 2e-6, 5e9, 1.0, "", {}}};
  return p;
}

void add_gemm_grid(core::Profile& p, GemmLayout layout, double flops_per_s) {
  for (int64_t m : {128, 1024})
    for (int64_t n : {128, 1024})
      for (int64_t k : {128, 1024})
        p.tables.gemm.push_back({m, n, k, DType::fp32, 2.0 * double(m * n * k) / flops_per_s, layout});
}

using loom::testing::expect_relative;
// Interpolated and summed over table rows: equal up to accumulated rounding.
constexpr double kTableTolerance = 1e-9;

TEST(MeasuredTables, EachGemmLayoutUsesItsOwnTable) {
  core::Profile p = cpu_like_profile();
  add_gemm_grid(p, GemmLayout::nn, 50e9);
  add_gemm_grid(p, GemmLayout::tn, 25e9);
  const CostModel costs(p, DType::fp32);
  const double flops = 2.0 * 512 * 256 * 300;
  expect_relative(costs.gemm_s(512, 256, 300, 1, GemmLayout::nn), flops / 50e9, kTableTolerance);
  expect_relative(costs.gemm_s(512, 256, 300, 1, GemmLayout::tn), flops / 25e9, kTableTolerance);
  // "nt" was not measured: the forward layout's table stands for it.
  expect_relative(costs.gemm_s(512, 256, 300, 1, GemmLayout::nt), flops / 50e9, kTableTolerance);
}

TEST(MeasuredTables, AttentionTableIsUsedForBothPasses) {
  core::Profile p = cpu_like_profile();
  for (int64_t seq : {128, 512})
    for (int64_t d : {32, 128}) {
      const double f = 4.0 * 8 * double(seq * seq * d);
      p.tables.attention.push_back({8, seq, d, DType::fp32, false, f / 20e9});
      p.tables.attention.push_back({8, seq, d, DType::fp32, true, 2 * f / 10e9});
    }
  const CostModel costs(p, DType::fp32);
  // Time per head scales with the heads: 24 heads of 256 × 64 at the same rates.
  const double forward_flops = 4.0 * 24 * 256.0 * 256.0 * 64.0;
  expect_relative(costs.attention_s(24, 256, 64, false), forward_flops / 20e9, kTableTolerance);
  expect_relative(costs.attention_s(24, 256, 64, true), 2 * forward_flops / 10e9, kTableTolerance);
}

TEST(MeasuredTables, AttentionWithoutATableIsItsProductsAndSoftmax) {
  const core::Profile p = cpu_like_profile();
  const CostModel costs(p, DType::bf16);
  const int64_t b = 16, s = 512, d = 64;
  const double scores = double(b) * s * s;
  expect_relative(costs.attention_s(b, s, d, false),
                  costs.gemm_s(s, s, d, b) + costs.elementwise_s(kb::kSoftmax, kb::softmax_forward(scores, 2)) +
                      costs.gemm_s(s, d, s, b), kTableTolerance);
  EXPECT_GT(costs.attention_s(b, s, d, true), costs.attention_s(b, s, d, false));
}

TEST(MeasuredTables, BackwardKernelFallsBackToItsForwardTable) {
  core::Profile p = cpu_like_profile();
  p.tables.kernels = {{"layernorm", 1 << 20, 1e-4}, {"layernorm", 1 << 24, 1e-3}};
  const CostModel without(p, DType::fp32);
  expect_relative(without.elementwise_s(kb::kLayernormBackward, double(1 << 20)), 1e-4, kTableTolerance);
  p.tables.kernels.push_back({"layernorm_backward", 1 << 20, 3e-4});
  const CostModel with(p, DType::fp32);
  expect_relative(with.elementwise_s(kb::kLayernormBackward, double(1 << 20)), 3e-4, kTableTolerance);
  expect_relative(with.elementwise_s(kb::kLayernorm, double(1 << 20)), 1e-4, kTableTolerance);
}

TEST(MeasuredTables, BiasAndDropoutCostOnlyWhereMeasured) {
  core::Profile p = cpu_like_profile();
  EXPECT_EQ(CostModel(p, DType::fp32).elementwise_s(kb::kBias, 1e6), 0.0);
  EXPECT_EQ(CostModel(p, DType::fp32).elementwise_s(kb::kDropout, 1e6), 0.0);
  EXPECT_GT(CostModel(p, DType::fp32).elementwise_s(kb::kResidual, 1e6), 0.0);
  p.tables.kernels = {{"bias", 1 << 20, 2e-4}};
  expect_relative(CostModel(p, DType::fp32).elementwise_s(kb::kBias, double(1 << 20)), 2e-4, kTableTolerance);
}

TEST(MeasuredTables, LlamaKernelsUseTheirOwnTables) {
  core::Profile p = cpu_like_profile();
  p.tables.kernels = {{"layernorm", 1 << 20, 1e-4}, {"gelu", 1 << 20, 1e-4}};
  const CostModel gpt_tables(p, DType::fp32);
  // GPT-2's tables do not stand for Llama's kernels: without their own they run at the memory
  // bandwidth, as any kernel without a table does.
  const double bandwidth = gpt_tables.elementwise_s("elementwise", double(1 << 20));
  for (std::string_view kernel : {kb::kRmsnorm, kb::kRmsnormBackward, kb::kSwiglu, kb::kSwigluBackward, kb::kRotary,
                                  kb::kRotaryBackward})
    expect_relative(gpt_tables.elementwise_s(kernel, double(1 << 20)), bandwidth, kTableTolerance);
  p.tables.kernels.insert(p.tables.kernels.end(),
                          {{"rmsnorm", 1 << 20, 2e-4}, {"swiglu", 1 << 20, 3e-4}, {"swiglu_backward", 1 << 20, 5e-4},
                           {"rotary", 1 << 20, 4e-4}});
  const CostModel llama_tables(p, DType::fp32);
  expect_relative(llama_tables.elementwise_s(kb::kRmsnorm, double(1 << 20)), 2e-4, kTableTolerance);
  expect_relative(llama_tables.elementwise_s(kb::kRmsnormBackward, double(1 << 20)), 2e-4, kTableTolerance);  // forward's
  expect_relative(llama_tables.elementwise_s(kb::kSwiglu, double(1 << 20)), 3e-4, kTableTolerance);
  expect_relative(llama_tables.elementwise_s(kb::kSwigluBackward, double(1 << 20)), 5e-4, kTableTolerance);
  expect_relative(llama_tables.elementwise_s(kb::kRotaryBackward, double(1 << 20)), 4e-4, kTableTolerance);
  expect_relative(llama_tables.elementwise_s(kb::kLayernorm, double(1 << 20)), 1e-4, kTableTolerance);
}

TEST(MeasuredTables, QueryGroupsCostOnlyWhereMeasured) {
  core::Profile p = cpu_like_profile();
  EXPECT_EQ(CostModel(p, DType::fp32).elementwise_s(kb::kQueryGroups, 1e6), 0.0);
  EXPECT_EQ(CostModel(p, DType::fp32).elementwise_s(kb::kQueryGroupsBackward, 1e6), 0.0);
  p.tables.kernels = {{"query_groups", 1 << 20, 6e-4}};
  expect_relative(CostModel(p, DType::fp32).elementwise_s(kb::kQueryGroups, double(1 << 20)), 6e-4, kTableTolerance);
  expect_relative(CostModel(p, DType::fp32).elementwise_s(kb::kQueryGroupsBackward, double(1 << 20)), 6e-4,
                  kTableTolerance);
}

// loom-tiny or its Llama twin on one device of the CPU-like profile.
core::Plan tiny_plan(std::string_view preset) {
  core::Plan plan;
  plan.model = core::resolve_model(std::string(preset));
  plan.training.global_batch_size = 8;
  plan.training.dtype = DType::fp32;
  plan.cluster.nodes = 1;
  plan.cluster.devices_per_node = 1;
  plan.cluster.profile = "cpu-like";
  plan.parallel.micro_batch_size = 2;
  plan.validate();
  return plan;
}

TEST(MeasuredTables, ALayerIsTimedFromItsArchitecturesTables) {
  // Slowing a kernel's table slows the layers that run it and no other.
  core::Profile p = cpu_like_profile();
  add_gemm_grid(p, GemmLayout::nn, 50e9);
  const auto layer_s = [&](const core::Plan& plan) {
    const LayerCosts c = layer_costs(plan, CostModel(p, DType::fp32));
    return c.layer_forward.compute_s + c.layer_backward.compute_s;
  };
  const core::Plan gpt = tiny_plan("loom-tiny"), llama = tiny_plan("loom-tiny-llama");
  const double gpt_before = layer_s(gpt), llama_before = layer_s(llama);
  for (const auto& [gpt_kernel, llama_kernel] :
       {std::pair{kb::kLayernorm, kb::kRmsnorm}, std::pair{kb::kGelu, kb::kSwiglu}}) {
    SCOPED_TRACE(std::string(gpt_kernel) + " / " + std::string(llama_kernel));
    p.tables.kernels = {{std::string(gpt_kernel), 1 << 10, 1.0}, {std::string(gpt_kernel), 1 << 30, 1.0}};
    EXPECT_GT(layer_s(gpt), gpt_before + 1.0);
    expect_relative(layer_s(llama), llama_before, kTableTolerance);
    p.tables.kernels = {{std::string(llama_kernel), 1 << 10, 1.0}, {std::string(llama_kernel), 1 << 30, 1.0}};
    expect_relative(layer_s(gpt), gpt_before, kTableTolerance);
    EXPECT_GT(layer_s(llama), llama_before + 1.0);
  }
  // Rotary positions turn q and k forward and back: a second per measured second.
  p.tables.kernels = {{"rotary", 1 << 10, 1.0}, {"rotary", 1 << 30, 1.0}};
  expect_relative(layer_s(gpt), gpt_before, kTableTolerance);
  EXPECT_GT(layer_s(llama), llama_before + 1.0);
  // The expansion of query groups costs nothing until measured, then forward and back; with flash
  // attention (which keeps the groups only) a third time, again before the core's backward.
  p.tables.kernels = {{"query_groups", 1 << 10, 1.0}, {"query_groups", 1 << 30, 1.0}};
  expect_relative(layer_s(llama), llama_before + 2.0, 1e-3);
  core::Plan llama_flash = llama;
  llama_flash.parallel.attention_backend = core::AttentionBackend::flash;
  const double flash_with_expansion = layer_s(llama_flash);
  p.tables.kernels = {};
  expect_relative(flash_with_expansion, layer_s(llama_flash) + 3.0, 1e-3);
  p.tables.kernels = {{"query_groups", 1 << 10, 1.0}, {"query_groups", 1 << 30, 1.0}};
  expect_relative(layer_s(gpt), gpt_before, kTableTolerance);
}

TEST(MeasuredTables, RanksBeyondTheCoresShareThem) {
  core::Profile p = cpu_like_profile();
  add_gemm_grid(p, GemmLayout::nn, 50e9);
  p.tables.kernels = {{"gelu", 1 << 20, 1e-4}};
  p.device.host_cores = 2;
  p.device.threads_per_rank = 1;
  const CostModel alone(p, DType::fp32, 2), crowded(p, DType::fp32, 4);
  EXPECT_EQ(alone.compute_share(), 1.0);
  EXPECT_EQ(crowded.compute_share(), 2.0);
  expect_relative(crowded.gemm_s(512, 512, 512), 2 * alone.gemm_s(512, 512, 512), kTableTolerance);
  expect_relative(crowded.elementwise_s(kb::kGelu, 1 << 20), 2 * alone.elementwise_s(kb::kGelu, 1 << 20), kTableTolerance);
  // Communication is measured among ranks that share the cores already: not scaled again.
  EXPECT_EQ(crowded.collective_s(Collective::all_reduce, 1e6, {4, 4}), alone.collective_s(Collective::all_reduce, 1e6, {4, 4}));
  // Two threads per rank fill the cores with one rank fewer.
  p.device.threads_per_rank = 2;
  EXPECT_EQ(CostModel(p, DType::fp32, 2).compute_share(), 2.0);
  // A GPU profile (no host_cores) never shares.
  p.device.host_cores = 0;
  EXPECT_EQ(CostModel(p, DType::fp32, 64).compute_share(), 1.0);
}

// A profile says under which load its tables were measured and how much a full node slows the
// same kernels: a plan with more ranks computing per node than the tables' load gets slower
// compute, one with fewer faster, linearly between one rank and the probe's load; beyond the
// cores, time-sharing multiplies on top.
TEST(MeasuredTables, AMeasuredLoadCarriesTheTablesToThePlansBusyRanks) {
  core::Profile p = cpu_like_profile();
  add_gemm_grid(p, GemmLayout::nn, 50e9);
  p.device.host_cores = 4;
  p.device.threads_per_rank = 1;
  const double unscaled = CostModel(p, DType::fp32, 1).gemm_s(512, 512, 512);
  // Tables timed with one rank busy, a probe 30 % slower with 4 ranks busy at once.
  p.device.measured_load = core::MeasuredLoad{1, 4, 1.3};
  EXPECT_DOUBLE_EQ(CostModel(p, DType::fp32, 1).compute_share(), 1.0);
  EXPECT_NEAR(CostModel(p, DType::fp32, 2).compute_share(), 1.1, 1e-12);
  EXPECT_NEAR(CostModel(p, DType::fp32, 4).compute_share(), 1.3, 1e-12);
  // 8 ranks on 4 cores: the probe's load, and time-sharing of the cores.
  EXPECT_NEAR(CostModel(p, DType::fp32, 8).compute_share(), 2 * 1.3, 1e-12);
  expect_relative(CostModel(p, DType::fp32, 4).gemm_s(512, 512, 512), 1.3 * unscaled, kTableTolerance);
  // Tables timed with every rank busy: a rank alone runs faster than they say.
  p.device.measured_load = core::MeasuredLoad{4, 4, 1.3};
  EXPECT_NEAR(CostModel(p, DType::fp32, 1).compute_share(), 1 / 1.3, 1e-12);
  EXPECT_NEAR(CostModel(p, DType::fp32, 2).compute_share(), 1.1 / 1.3, 1e-12);
  EXPECT_NEAR(CostModel(p, DType::fp32, 4).compute_share(), 1.0, 1e-12);
  expect_relative(CostModel(p, DType::fp32, 1).elementwise_s(kb::kGelu, 1 << 20),
                  CostModel(p, DType::fp32, 4).elementwise_s(kb::kGelu, 1 << 20) / 1.3, kTableTolerance);
  // Communication is measured among the ranks as they run: not scaled.
  EXPECT_EQ(CostModel(p, DType::fp32, 1).collective_s(Collective::all_reduce, 1e6, {2, 2}),
            CostModel(p, DType::fp32, 4).collective_s(Collective::all_reduce, 1e6, {2, 2}));
  // Without a measured load, or on a GPU profile (no host_cores): as before.
  p.device.measured_load.reset();
  EXPECT_EQ(CostModel(p, DType::fp32, 4).compute_share(), 1.0);
  p.device.measured_load = core::MeasuredLoad{1, 4, 1.3};
  p.device.host_cores = 0;
  EXPECT_EQ(CostModel(p, DType::fp32, 4).compute_share(), 1.0);
}

TEST(MeasuredTables, ADeviceComputingInOneTypeSimulatesPlansInIt) {
  core::Profile p = cpu_like_profile();
  p.device.memory_bytes = int64_t(1) << 40;
  add_gemm_grid(p, GemmLayout::nn, 50e9);
  p.device.compute_dtype = DType::fp32;
  core::Plan bf16 = core::default_plan();
  bf16.training.dtype = DType::bf16;
  core::Plan fp32 = bf16;
  fp32.training.dtype = DType::fp32;
  EXPECT_EQ(simulated_dtype(DType::bf16, p), DType::fp32);
  EXPECT_EQ(as_simulated(bf16, p).training.dtype, DType::fp32);
  SimulationOptions options;
  options.record_timeline = false;
  const Prediction from_bf16 = simulate(bf16, p, options), from_fp32 = simulate(fp32, p, options);
  EXPECT_EQ(from_bf16.step_time_s, from_fp32.step_time_s);
  EXPECT_EQ(from_bf16.peak_memory_bytes, from_fp32.peak_memory_bytes);
  // Without the restriction the bf16 plan keeps its own type (and its smaller weights).
  p.device.compute_dtype.reset();
  EXPECT_EQ(simulated_dtype(DType::bf16, p), DType::bf16);
  EXPECT_LT(simulate(bf16, p, options).peak_memory_bytes, from_fp32.peak_memory_bytes);
}

}  // namespace
}  // namespace loom::sim
