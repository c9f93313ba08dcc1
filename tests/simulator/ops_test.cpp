// The op list of one training step: its GEMM FLOPs add up to Megatron's model FLOPs, tensor
// parallelism splits them evenly, backward is twice forward, recompute repeats the right part,
// the tensor-parallel collectives are Megatron's conjugate pairs with b·s·h elements each, and a
// Llama layer runs RMSNorm, SwiGLU and rotary positions where GPT-2's runs LayerNorm and GELU.

#include "simulator/ops.hpp"

#include "core/kernel_bytes.hpp"
#include "core/model_arithmetic.hpp"
#include "core/model_presets.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace loom::sim {
namespace {

using core::DType;
using core::Recompute;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

core::Plan gpt_plan(const std::string& preset, int64_t vocab, int64_t tp, bool sp, Recompute recompute,
                    DType dtype = DType::bf16) {
  core::Plan plan;
  plan.model = core::find_model_preset(preset).spec;
  plan.model.padded_vocab_size = vocab;
  plan.training.global_batch_size = 32;
  plan.training.dtype = dtype;
  plan.cluster.nodes = 1;
  plan.cluster.devices_per_node = tp;
  plan.cluster.profile = "a100-80gb-dgx";
  plan.parallel.tensor_parallel = tp;
  plan.parallel.pipeline_parallel = 1;
  plan.parallel.data_parallel = 1;
  plan.parallel.micro_batch_size = 4;
  plan.parallel.recompute = recompute;
  plan.parallel.sequence_parallel = sp;
  plan.validate();
  return plan;
}

core::Plan gpt2_plan(int64_t tp = 1, bool sp = false, Recompute recompute = Recompute::none,
                     DType dtype = DType::bf16) {
  return gpt_plan("gpt2-124m", 50304, tp, sp, recompute, dtype);
}

// GEMM FLOPs of one step of the whole model on one device, from the op lists.
double step_gemm_flops(const core::Plan& plan) {
  const LayerOps layer = transformer_layer_ops(plan);
  const LayerOps output = output_layer_ops(plan);
  const double forward = double(plan.model.num_layers) * total_flops(layer.forward) + total_flops(output.forward);
  const double microbatches = double(plan.training.global_batch_size) / double(plan.parallel.micro_batch_size);
  return 3.0 * forward * microbatches;
}

double relative_difference(double a, double b) { return std::abs(a - b) / std::abs(b); }

std::vector<Op> of_kind(const std::vector<Op>& ops, OpKind kind) {
  std::vector<Op> out;
  std::copy_if(ops.begin(), ops.end(), std::back_inserter(out), [&](const Op& op) { return op.kind == kind; });
  return out;
}

std::vector<Collective> collectives_of(const std::vector<Op>& ops) {
  std::vector<Collective> out;
  for (const Op& op : of_kind(ops, OpKind::collective)) out.push_back(op.collective);
  return out;
}

std::vector<std::string> names_of(const std::vector<Op>& ops) {
  std::vector<std::string> out;
  for (const Op& op : ops) out.emplace_back(op.name);
  return out;
}

// The profile tables the memory-bound ops of a list look in, in order.
std::vector<std::string> kernels_of(const std::vector<Op>& ops) {
  std::vector<std::string> out;
  for (const Op& op : of_kind(ops, OpKind::elementwise)) out.emplace_back(op.kernel);
  return out;
}

const Op& find_op(const std::vector<Op>& ops, std::string_view name) {
  const auto it = std::find_if(ops.begin(), ops.end(), [&](const Op& op) { return op.name == name; });
  if (it == ops.end()) throw std::logic_error("no op " + std::string(name));
  return *it;
}

// Llama 3 8B (32 heads in 8 query groups, SwiGLU of 14336, RMSNorm, rotary positions, no
// biases) at tp 4 with sequence parallelism: micro-batch 4 × 8192 tokens.
core::Plan llama3_plan(Recompute recompute = Recompute::none) {
  return gpt_plan("llama3-8b", 128256, 4, true, recompute);
}

TEST(Ops, GemmFlopsOfAStepEqualModelFlops) {
  for (const core::Plan& plan : {gpt2_plan(), gpt_plan("gpt3-1.3b", 51200, 1, false, Recompute::none),
                                 gpt_plan("gpt3-175b", 51200, 1, false, Recompute::full)}) {
    SCOPED_TRACE(plan.model.name);
    const double expected = core::model_flops_per_step(plan.model, plan.training.global_batch_size);
    EXPECT_LT(relative_difference(step_gemm_flops(plan), expected), 1e-12)
        << step_gemm_flops(plan) << " vs " << expected;
  }
}

TEST(Ops, GemmFlopsMatchMegatronClosedForm) {
  // The op list against the published 72·B·s·L·h²·(1 + s/(6h) + V/(12hL)), GPT-3 175B.
  const core::Plan plan = gpt_plan("gpt3-175b", 51200, 1, false, Recompute::none);
  const double published = core::megatron_model_flops_per_step(plan.model, plan.training.global_batch_size);
  EXPECT_LT(relative_difference(step_gemm_flops(plan), published), 1e-12);
}

TEST(Ops, TensorParallelismSplitsFlopsEvenly) {
  for (bool sp : {false, true}) {
    SCOPED_TRACE(sp ? "sequence parallel" : "no sequence parallel");
    const core::Plan whole = gpt2_plan(1);
    const core::Plan split = gpt2_plan(4, sp);
    EXPECT_LT(relative_difference(step_gemm_flops(split), step_gemm_flops(whole) / 4.0), 1e-12);
    EXPECT_LT(relative_difference(total_flops(transformer_layer_ops(split).forward),
                                  total_flops(transformer_layer_ops(whole).forward) / 4.0),
              1e-12);
    EXPECT_LT(relative_difference(total_flops(output_layer_ops(split).forward),
                                  total_flops(output_layer_ops(whole).forward) / 4.0),
              1e-12);
  }
}

TEST(Ops, BackwardGemmFlopsAreTwiceForward) {
  for (int64_t tp : {1, 4}) {
    const core::Plan plan = gpt2_plan(tp, tp > 1);
    const LayerOps layer = transformer_layer_ops(plan);
    EXPECT_GT(total_flops(layer.forward), 0);
    EXPECT_DOUBLE_EQ(total_flops(layer.backward), 2.0 * total_flops(layer.forward));
    const LayerOps output = output_layer_ops(plan);
    EXPECT_DOUBLE_EQ(total_flops(output.backward), 2.0 * total_flops(output.forward));
    // Each forward GEMM has a data-gradient and a weight-gradient GEMM of its own size.
    EXPECT_EQ(of_kind(layer.backward, OpKind::gemm).size(), 2 * of_kind(layer.forward, OpKind::gemm).size());
  }
}

TEST(Ops, GemmShapesOfALayer) {
  const core::Plan plan = gpt2_plan(4, true);
  const int64_t b = 4, s = 1024, h = 768, a = 12, t = 4, d = 64, f = 3072;
  const LayerOps layer = transformer_layer_ops(plan);
  auto find = [&](std::string_view name) {
    auto it = std::find_if(layer.forward.begin(), layer.forward.end(), [&](const Op& op) { return op.name == name; });
    EXPECT_NE(it, layer.forward.end()) << name;
    return *it;
  };
  const Op qkv = find("qkv");
  EXPECT_EQ(std::tie(qkv.m, qkv.n, qkv.k, qkv.batch), std::make_tuple(b * s, 3 * h / t, h, int64_t(1)));
  EXPECT_EQ(qkv.layout, core::GemmLayout::nn);
  const Op core = find("attention");
  EXPECT_EQ(core.kind, OpKind::attention);
  EXPECT_EQ(std::tie(core.m, core.k, core.batch), std::make_tuple(s, d, b * a / t));
  EXPECT_DOUBLE_EQ(core.flops, 4.0 * double(b * a / t) * double(s) * double(s) * double(d));  // Q·Kᵀ and ·V
  const Op down = find("mlp_down");
  EXPECT_EQ(std::tie(down.m, down.n, down.k), std::make_tuple(b * s, h, f / t));
  for (const Op& op : of_kind(layer.forward, OpKind::gemm))
    EXPECT_DOUBLE_EQ(op.flops, 2.0 * double(op.m) * double(op.n) * double(op.k) * double(op.batch)) << op.name;
}

TEST(Ops, NoRecomputeRepeatsNothing) {
  EXPECT_TRUE(transformer_layer_ops(gpt2_plan(1, false, Recompute::none)).recompute.empty());
}

TEST(Ops, SelectiveRecomputeRepeatsTheAttentionCoreOnly) {
  for (int64_t tp : {1, 4}) {
    const LayerOps layer = transformer_layer_ops(gpt2_plan(tp, tp > 1, Recompute::selective));
    EXPECT_THAT(names_of(layer.recompute), ElementsAre("attention"));
    // Same work as in the forward: 4·b·s²·h/t FLOPs (Q·Kᵀ and ·V).
    const double b = 4, s = 1024, h = 768;
    EXPECT_DOUBLE_EQ(total_flops(layer.recompute), 4.0 * b * s * s * h / double(tp));
    EXPECT_TRUE(collectives_of(layer.recompute).empty());
  }
}

TEST(Ops, FullRecomputeRepeatsTheWholeForward) {
  for (int64_t tp : {1, 4}) {
    for (bool sp : {false, true}) {
      if (sp && tp == 1) continue;
      const LayerOps layer = transformer_layer_ops(gpt2_plan(tp, sp, Recompute::full));
      ASSERT_EQ(layer.recompute.size(), layer.forward.size());
      EXPECT_EQ(names_of(layer.recompute), names_of(layer.forward));
      for (size_t i = 0; i < layer.forward.size(); ++i) {
        EXPECT_EQ(layer.recompute[i].kind, layer.forward[i].kind);
        EXPECT_EQ(layer.recompute[i].flops, layer.forward[i].flops);
        EXPECT_EQ(layer.recompute[i].bytes, layer.forward[i].bytes);
      }
    }
  }
}

TEST(Ops, NoTensorParallelismMeansNoCollectives) {
  const core::Plan plan = gpt2_plan(1, false, Recompute::full);
  for (const LayerOps& ops : {transformer_layer_ops(plan), embedding_ops(plan), output_layer_ops(plan)}) {
    EXPECT_TRUE(collectives_of(ops.forward).empty());
    EXPECT_TRUE(collectives_of(ops.backward).empty());
    EXPECT_TRUE(collectives_of(ops.recompute).empty());
  }
}

TEST(Ops, TensorParallelLayerAllReducesTwiceEachWay) {
  for (DType dtype : {DType::bf16, DType::fp32}) {
    const core::Plan plan = gpt2_plan(4, false, Recompute::none, dtype);
    const LayerOps layer = transformer_layer_ops(plan);
    EXPECT_THAT(collectives_of(layer.forward), ElementsAre(Collective::all_reduce, Collective::all_reduce));
    EXPECT_THAT(collectives_of(layer.backward), ElementsAre(Collective::all_reduce, Collective::all_reduce));
    const double expected_bytes = 4.0 * 1024 * 768 * core::bytes_per_element(dtype);  // b·s·h elements
    for (const auto* ops : {&layer.forward, &layer.backward})
      for (const Op& op : of_kind(*ops, OpKind::collective)) EXPECT_DOUBLE_EQ(op.bytes, expected_bytes) << op.name;
  }
}

TEST(Ops, SequenceParallelLayerGathersAndScattersTheSameVolume) {
  const core::Plan plan = gpt2_plan(4, true);
  const LayerOps layer = transformer_layer_ops(plan);
  EXPECT_THAT(collectives_of(layer.forward), UnorderedElementsAre(Collective::all_gather, Collective::all_gather,
                                                                  Collective::reduce_scatter, Collective::reduce_scatter));
  // Conjugates: the forward enters each region with an all-gather and leaves with a
  // reduce-scatter; the backward runs the reverse order with the roles swapped, and gathers each
  // region's input once more for its weight gradient (only this rank's rows were kept).
  EXPECT_THAT(collectives_of(layer.forward), ElementsAre(Collective::all_gather, Collective::reduce_scatter,
                                                         Collective::all_gather, Collective::reduce_scatter));
  EXPECT_THAT(collectives_of(layer.backward),
              ElementsAre(Collective::all_gather, Collective::all_gather, Collective::reduce_scatter,
                          Collective::all_gather, Collective::all_gather, Collective::reduce_scatter));
  const double expected_bytes = 4.0 * 1024 * 768 * 2;
  for (const auto* ops : {&layer.forward, &layer.backward})
    for (const Op& op : of_kind(*ops, OpKind::collective)) EXPECT_DOUBLE_EQ(op.bytes, expected_bytes) << op.name;
}

TEST(Ops, ElementwiseOpsNameAProfileKernelAndMoveBytes) {
  const std::vector<std::string> kernels(std::begin(core::kernel_bytes::kAllKernels),
                                         std::end(core::kernel_bytes::kAllKernels));
  for (const core::Plan& plan : {gpt2_plan(4, true, Recompute::selective), llama3_plan(Recompute::full)})
  for (const LayerOps& ops : {transformer_layer_ops(plan), embedding_ops(plan), output_layer_ops(plan)})
    for (const auto* list : {&ops.forward, &ops.backward, &ops.recompute})
      for (const Op& op : *list) {
        if (op.kind == OpKind::gemm || op.kind == OpKind::attention) continue;
        EXPECT_GT(op.bytes, 0) << op.name;
        EXPECT_EQ(op.flops, 0) << op.name;
        if (op.kind == OpKind::elementwise) {
          EXPECT_NE(std::find(kernels.begin(), kernels.end(), std::string(op.kernel)), kernels.end()) << op.kernel;
        }
      }
}

TEST(Ops, GptLayerChargesLayernormGeluAndBiases) {
  const LayerOps layer = transformer_layer_ops(gpt2_plan(4, true));
  EXPECT_THAT(kernels_of(layer.forward),
              ElementsAre("layernorm", "bias", "bias", "residual", "layernorm", "bias", "gelu", "bias", "residual"));
  EXPECT_THAT(kernels_of(layer.backward),
              ElementsAre("bias_backward", "residual_backward", "gelu_backward", "bias_backward", "layernorm_backward",
                          "bias_backward", "residual_backward", "bias_backward", "layernorm_backward"));
  EXPECT_THAT(kernels_of(output_layer_ops(gpt2_plan()).forward), ElementsAre("layernorm", "cross_entropy"));
}

TEST(Ops, LlamaLayerChargesRmsnormSwigluAndRotary) {
  // No biases (add-bias-linear false); the query groups' expansion is the executor's, charged
  // only where a profile measured it (core/kernel_bytes.hpp).
  for (Recompute recompute : {Recompute::none, Recompute::full}) {
    const LayerOps layer = transformer_layer_ops(llama3_plan(recompute));
    EXPECT_THAT(kernels_of(layer.forward),
                ElementsAre("rmsnorm", "rotary", "query_groups", "residual", "rmsnorm", "swiglu", "residual"));
    // Unfused without recompute keeps the per-head copies (Megatron's repeat_interleave): no second copy.
    if (recompute == Recompute::none) {
      EXPECT_THAT(kernels_of(layer.backward),
                  ElementsAre("residual_backward", "swiglu_backward", "rmsnorm_backward", "residual_backward",
                              "query_groups_backward", "rotary_backward", "rmsnorm_backward"));
    } else {
      EXPECT_THAT(kernels_of(layer.backward),
                  ElementsAre("residual_backward", "swiglu_backward", "rmsnorm_backward", "residual_backward",
                              "query_groups", "query_groups_backward", "rotary_backward", "rmsnorm_backward"));
    }
    if (recompute == Recompute::full) {
      EXPECT_EQ(kernels_of(layer.recompute), kernels_of(layer.forward));
    }
  }
  EXPECT_THAT(kernels_of(output_layer_ops(llama3_plan()).forward), ElementsAre("rmsnorm", "cross_entropy"));
  EXPECT_THAT(kernels_of(output_layer_ops(llama3_plan()).backward), ElementsAre("cross_entropy_backward", "rmsnorm_backward"));
}

TEST(Ops, LlamaAttentionTurnsQAndKThenExpandsTheGroupsAroundTheCore) {
  core::Plan flash = llama3_plan();
  flash.parallel.attention_backend = core::AttentionBackend::flash;  // keeps the groups only
  const LayerOps layer = transformer_layer_ops(flash);
  EXPECT_THAT(names_of(layer.forward), ::testing::IsSupersetOf({"qkv", "rotary", "expand_query_groups", "attention"}));
  const auto position = [](const std::vector<Op>& ops, std::string_view name) {
    return std::find_if(ops.begin(), ops.end(), [&](const Op& op) { return op.name == name; }) - ops.begin();
  };
  const std::vector<Op>& f = layer.forward;
  EXPECT_LT(position(f, "qkv"), position(f, "rotary"));
  EXPECT_LT(position(f, "rotary"), position(f, "expand_query_groups"));
  EXPECT_LT(position(f, "expand_query_groups"), position(f, "attention"));
  // Backward: the copies made again before the core's backward, their gradients summed into the
  // groups after it, then q and k turned back before the QKV projection's gradients.
  const std::vector<Op>& b = layer.backward;
  EXPECT_LT(position(b, "expand_query_groups.again"), position(b, "attention.backward"));
  EXPECT_LT(position(b, "attention.backward"), position(b, "reduce_query_groups"));
  EXPECT_LT(position(b, "reduce_query_groups"), position(b, "rotary.backward"));
  EXPECT_LT(position(b, "rotary.backward"), position(b, "qkv.dgrad"));

  // One group per head (Llama 2 7B): nothing to expand, rotary positions all the same.
  const LayerOps mha = transformer_layer_ops(gpt_plan("llama2-7b", 32000, 4, true, Recompute::none));
  EXPECT_THAT(kernels_of(mha.forward), ElementsAre("rmsnorm", "rotary", "residual", "rmsnorm", "swiglu", "residual"));
  EXPECT_THAT(kernels_of(mha.backward), ElementsAre("residual_backward", "swiglu_backward", "rmsnorm_backward",
                                                    "residual_backward", "rotary_backward", "rmsnorm_backward"));
}

TEST(Ops, LlamaKernelsMoveTheirActivations) {
  // Per device at tp 4: b·s = 32768 rows; 8 heads and 2 groups of 128; ffn 14336/4 = 3584;
  // norms over the sequence-parallel 8192 rows of 4096; bf16; selective recompute keeps only the
  // groups, so they are expanded again in the backward.
  const LayerOps layer = transformer_layer_ops(llama3_plan(Recompute::selective));
  const double rows = 4.0 * 8192, e = 2;
  EXPECT_DOUBLE_EQ(find_op(layer.forward, "input_norm").bytes, 2 * (rows / 4) * 4096 * e);
  EXPECT_DOUBLE_EQ(find_op(layer.backward, "mlp_norm.backward").bytes, 3 * (rows / 4) * 4096 * e);
  // SwiGLU reads [gate | up] (2·3584) and writes 3584; its backward reads dy and gate_up, writes dgate_up.
  EXPECT_DOUBLE_EQ(find_op(layer.forward, "mlp_activation").bytes, (2 * 3584 + 3584) * rows * e);
  EXPECT_DOUBLE_EQ(find_op(layer.backward, "mlp_activation.backward").bytes, (3584 + 2 * 3584 + 2 * 3584) * rows * e);
  // Rotary positions read and write q and k only (8 + 2 heads of 128), not v.
  const double q_and_k = (8 + 2) * 128.0;
  EXPECT_DOUBLE_EQ(find_op(layer.forward, "rotary").bytes, 2 * rows * q_and_k * e);
  EXPECT_DOUBLE_EQ(find_op(layer.backward, "rotary.backward").bytes, 2 * rows * q_and_k * e);
  EXPECT_LT(find_op(layer.forward, "rotary").bytes, 2 * rows * double(find_op(layer.forward, "qkv").n) * e);
  // The expansion reads the grouped qkv (8 + 2·2 heads) and writes q, k and v of all 8 heads.
  const double grouped = (8 + 2 * 2) * 128.0, full = 3 * 8 * 128.0;
  EXPECT_DOUBLE_EQ(find_op(layer.forward, "expand_query_groups").bytes, rows * (grouped + full) * e);
  EXPECT_DOUBLE_EQ(find_op(layer.backward, "reduce_query_groups").bytes, rows * (grouped + full) * e);
  EXPECT_DOUBLE_EQ(find_op(layer.backward, "expand_query_groups.again").bytes, rows * (grouped + full) * e);
}

TEST(Ops, TotalFlopsSumsOps) {
  Op a;
  a.flops = 1.5;
  Op b;
  b.flops = 2.25;
  Op c;
  c.kind = OpKind::collective;
  c.bytes = 100;
  EXPECT_DOUBLE_EQ(total_flops({a, b, c}), 3.75);
  EXPECT_EQ(total_flops({}), 0.0);
}

}  // namespace
}  // namespace loom::sim
