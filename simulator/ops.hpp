#pragma once
// The operations of one training step on one device, as the simulator costs them: per
// transformer layer (QKV, attention core, projection, MLP, norms, residuals, dropout and the
// tensor-parallel collectives), the embedding, and the logits with the loss — each with its
// FLOPs, bytes moved and, for GEMMs, its shape on this device after tensor-parallel splitting.

#include "core/plan.hpp"
#include "core/profile.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

namespace loom::sim {

enum class OpKind : uint8_t { gemm, attention, elementwise, collective };
enum class Collective : uint8_t { all_reduce, all_gather, reduce_scatter, broadcast, send_recv };
std::string_view to_string(Collective collective);

struct Op {
  std::string_view name;  // "qkv", "attention", "mlp_down.dgrad", "tp_all_reduce", ...
  OpKind kind = OpKind::gemm;
  // GEMM: C[m×n] = op(A)·op(B) with depth k, `batch` times; `layout` says which operand is
  // transposed (core::GemmLayout). Attention: `batch` = micro-batch × heads causal heads of
  // m = sequence × k = head_dim, forward or (`backward`) backward.
  int64_t m = 0, n = 0, k = 0, batch = 1;
  core::GemmLayout layout = core::GemmLayout::nn;
  bool backward = false;
  core::AttentionBackend backend = core::AttentionBackend::unfused;  // attention: which kernel(s)
  double flops = 0;  // GEMMs and attention: what the kernels execute
  // Flash attention: HBM traffic of the fused kernel (q, k, v, output, their gradients and the
  // log-sum-exp), O(b·s·h) where the unfused kernels move O(b·a·s²).
  double attention_bytes = 0;
  double bytes = 0;  // memory traffic for elementwise ops; payload for collectives (nccl-tests' count)
  std::string_view kernel;  // elementwise: the profile table to look in (core/kernel_bytes.hpp)
  Collective collective = Collective::all_reduce;  // collectives: which one, over the tensor group
};

// Where an op sits, for the timeline and the breakdown.
struct LayerOps {
  std::vector<Op> forward;
  std::vector<Op> backward;
  std::vector<Op> recompute;  // forward work repeated before the backward (selective or full)
};

// One transformer layer for one microbatch on one device of the plan.
LayerOps transformer_layer_ops(const core::Plan& plan);
// The input embedding (on the first virtual stage) and the output layer with the cross-entropy
// loss (on the last), for one microbatch.
LayerOps embedding_ops(const core::Plan& plan);
LayerOps output_layer_ops(const core::Plan& plan);

double total_flops(const std::vector<Op>& ops);

// The attention core of `batch` causal heads of seq × head_dim, forward or backward, as the
// backend runs it: unfused (FLOPs of full s×s products, as Megatron counts them; timed as
// separate kernels) or flash (one fused kernel; the FLOPs and HBM bytes it executes).
Op attention_core(std::string_view name, core::AttentionBackend backend, int64_t batch, int64_t seq, int64_t head_dim,
                  bool backward, double element_bytes);

}  // namespace loom::sim
