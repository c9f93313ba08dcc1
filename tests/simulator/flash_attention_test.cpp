// Flash attention in the simulator: the FLOPs and bytes the fused kernel executes, its memory
// without the s² terms, and its time from a measured table of its own backend.

#include "core/model_presets.hpp"
#include "core/profile.hpp"
#include "simulator/cost_model.hpp"
#include "simulator/memory_model.hpp"
#include "simulator/ops.hpp"
#include "simulator/prediction.hpp"

#include <gtest/gtest.h>

namespace loom::sim {
namespace {

using core::AttentionBackend;

core::Plan gpt3_plan(AttentionBackend backend, core::Recompute recompute, int64_t seq_length) {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt3-1.3b").spec;
  plan.model.seq_length = seq_length;
  plan.training.global_batch_size = 16;
  plan.cluster.nodes = 1;
  plan.cluster.devices_per_node = 8;
  plan.cluster.profile = "a100-80gb-dgx";
  plan.parallel.tensor_parallel = 2;
  plan.parallel.pipeline_parallel = 2;
  plan.parallel.data_parallel = 2;
  plan.parallel.micro_batch_size = 2;
  plan.parallel.recompute = recompute;
  plan.parallel.sequence_parallel = true;
  plan.parallel.attention_backend = backend;
  plan.validate();
  return plan;
}

const Op& find(const std::vector<Op>& ops, std::string_view name) {
  for (const Op& op : ops)
    if (op.name == name) return op;
  throw std::logic_error("no op " + std::string(name));
}

TEST(FlashAttention, ExecutesTheCausalTilesAndRecomputesScoresInTheBackward) {
  for (int64_t seq : {128, 1000, 2048, 4096}) {
    const core::Plan plan = gpt3_plan(AttentionBackend::flash, core::Recompute::none, seq);
    const LayerOps ops = transformer_layer_ops(plan);
    const Op& forward = find(ops.forward, "attention");
    const Op& backward = find(ops.backward, "attention.backward");
    const double heads = double(plan.parallel.micro_batch_size * plan.model.num_attention_heads / 2);
    const double d = double(plan.model.kv_channels());
    const double tiles = double((seq + 127) / 128);
    // Q·Kᵀ and P·V on T(T+1)/2 of T² tiles.
    EXPECT_DOUBLE_EQ(forward.flops, 4.0 * heads * double(seq) * double(seq) * d * (tiles + 1) / (2 * tiles));
    EXPECT_DOUBLE_EQ(backward.flops, 2.5 * forward.flops);  // five products to two
    // O(b·s·h) bytes: never the a·s² score matrix.
    EXPECT_LT(forward.attention_bytes, 8.0 * heads * double(seq) * d * 2.0);
    EXPECT_EQ(forward.backend, AttentionBackend::flash);
    // The unfused core counts full s×s products, as Megatron does.
    const LayerOps unfused_ops = transformer_layer_ops(gpt3_plan(AttentionBackend::unfused, core::Recompute::none, seq));
    const Op& unfused = find(unfused_ops.forward, "attention");
    EXPECT_DOUBLE_EQ(unfused.flops, 4.0 * heads * double(seq) * double(seq) * d);
    if (seq > 128) {
      EXPECT_LT(forward.flops, unfused.flops);  // one tile: the whole square
    }
  }
}

TEST(FlashAttention, SelectiveRecomputeHasNothingLeftToRecompute) {
  const core::Plan flash = gpt3_plan(AttentionBackend::flash, core::Recompute::selective, 2048);
  EXPECT_TRUE(transformer_layer_ops(flash).recompute.empty());
  EXPECT_EQ(transformer_layer_ops(gpt3_plan(AttentionBackend::unfused, core::Recompute::selective, 2048)).recompute.size(), 1u);
  // And stores what no recompute stores.
  const core::Plan none = gpt3_plan(AttentionBackend::flash, core::Recompute::none, 2048);
  EXPECT_EQ(memory_per_stage(flash)[0].activations_bytes, memory_per_stage(none)[0].activations_bytes);
}

// Korthikanti's 5·a·s/h term is at least the 34 other units once s ≥ 34·h/(5·a) (≈ 2h/a · 3.4), and
// beats the log-sum-exp Flash keeps instead for any s ≥ 2·h/a: memory with flash is below unfused.
TEST(FlashAttention, StoresLessThanUnfusedFromTwoHiddenPerHead) {
  core::ModelSpec model = core::find_model_preset("gpt3-1.3b").spec;
  const int64_t shortest = 2 * model.hidden_size / model.num_attention_heads;
  for (int64_t seq : std::initializer_list<int64_t>{shortest, 2 * shortest, 2048, 8192}) {
    model.seq_length = seq;
    for (core::Recompute recompute : {core::Recompute::none, core::Recompute::selective}) {
      for (bool sp : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "seq " << seq << " sp " << sp << " " << core::to_string(recompute));
        const double flash = activation_bytes_per_layer(model, 2, 2, sp, recompute, core::DType::bf16,
                                                        AttentionBackend::flash);
        const double unfused = activation_bytes_per_layer(model, 2, 2, sp, core::Recompute::none, core::DType::bf16,
                                                          AttentionBackend::unfused);
        EXPECT_LT(flash, unfused);
        // Exactly the selective figure plus the fp32 log-sum-exp, 4·a·s·b/t bytes.
        const double selective = activation_bytes_per_layer(model, 2, 2, sp, core::Recompute::selective,
                                                            core::DType::bf16, AttentionBackend::unfused);
        EXPECT_DOUBLE_EQ(flash, selective + 4.0 * double(model.num_attention_heads) * double(seq) * 2.0 / 2.0);
      }
    }
  }
  // Whole plans: the peak falls.
  const Prediction flash = simulate(gpt3_plan(AttentionBackend::flash, core::Recompute::none, 4096),
                                    core::resolve_profile("a100-80gb-dgx"));
  const Prediction unfused = simulate(gpt3_plan(AttentionBackend::unfused, core::Recompute::none, 4096),
                                      core::resolve_profile("a100-80gb-dgx"));
  EXPECT_LT(flash.peak_memory_bytes, unfused.peak_memory_bytes);
  EXPECT_LT(flash.step_time_s, unfused.step_time_s);  // no s² traffic, half the tiles
}

TEST(FlashAttention, TimedFromItsOwnMeasuredTable) {
  core::Profile profile = core::resolve_profile("a100-80gb-dgx");
  const CostModel datasheet(profile, core::DType::bf16);
  const double assumed = datasheet.attention_s(16, 2048, 128, false, AttentionBackend::flash);
  // The datasheet assumption: executed FLOPs at the profile's flash fraction.
  const Op op = attention_core("attention", AttentionBackend::flash, 16, 2048, 128, false, 2.0);
  EXPECT_NEAR(assumed, op.flops / (312e12 * *profile.efficiency.flash_forward_fraction) + profile.efficiency.kernel_launch_s,
              1e-12);
  // An unfused table does not time flash, and a flash table does not time unfused.
  profile.tables.attention.push_back({16, 2048, 128, core::DType::bf16, false, 1e-3, AttentionBackend::unfused});
  const CostModel with_unfused(profile, core::DType::bf16);
  EXPECT_DOUBLE_EQ(with_unfused.attention_s(16, 2048, 128, false, AttentionBackend::flash), assumed);
  EXPECT_NEAR(with_unfused.attention_s(16, 2048, 128, false, AttentionBackend::unfused), 1e-3, 1e-9);
  profile.tables.attention.push_back({16, 2048, 128, core::DType::bf16, false, 2e-4, AttentionBackend::flash});
  const CostModel with_flash(profile, core::DType::bf16);
  EXPECT_NEAR(with_flash.attention_s(16, 2048, 128, false, AttentionBackend::flash), 2e-4, 1e-9);
}

}  // namespace
}  // namespace loom::sim
