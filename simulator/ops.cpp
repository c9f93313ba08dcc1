#include "simulator/ops.hpp"

#include "core/kernel_bytes.hpp"

namespace loom::sim {

std::string_view to_string(Collective collective) {
  switch (collective) {
    case Collective::all_reduce: return "all_reduce";
    case Collective::all_gather: return "all_gather";
    case Collective::reduce_scatter: return "reduce_scatter";
    case Collective::broadcast: return "broadcast";
    case Collective::send_recv: return "send_recv";
  }
  return "?";
}

namespace {

// Shapes of one device's share of a microbatch.
struct Dims {
  int64_t tokens;         // b·s
  int64_t norm_tokens;    // tokens a norm/dropout sees: b·s/t with sequence parallel
  int64_t hidden;         // h
  int64_t qkv_width;      // (h + 2·g·d)/t
  int64_t heads;          // a/t
  int64_t query_groups;   // g/t (key/value heads)
  int64_t head_dim;       // d
  int64_t seq;            // s
  int64_t micro_batch;    // b
  int64_t ffn;            // f/t
  int64_t ffn_up_width;   // f/t, or 2f/t for SwiGLU's gate and up projections
  int64_t vocab;          // V/t
  double element_bytes;   // 2 for bf16/fp16, 4 for fp32
  bool sequence_parallel;
  int64_t tp;
  bool rmsnorm;           // RMSNorm (Llama) instead of LayerNorm
  bool swiglu;            // SwiGLU (Llama) instead of GELU
  bool rotary;            // rotary positions on q and k (Llama) instead of learned ones
  bool biases;            // biases on the linear layers (GPT-2; Megatron's add-bias-linear)
};

Dims dims_of(const core::Plan& plan) {
  const core::ModelSpec& m = plan.model;
  const int64_t t = plan.parallel.tensor_parallel;
  const int64_t b = plan.parallel.micro_batch_size;
  const bool sp = plan.parallel.sequence_parallel;
  Dims d{};
  d.tokens = b * m.seq_length;
  d.norm_tokens = sp ? d.tokens / t : d.tokens;
  d.hidden = m.hidden_size;
  d.qkv_width = (m.hidden_size + 2 * m.query_groups() * m.kv_channels()) / t;
  d.heads = m.num_attention_heads / t;
  d.query_groups = m.query_groups() / t;
  d.head_dim = m.kv_channels();
  d.seq = m.seq_length;
  d.micro_batch = b;
  d.ffn = m.ffn_hidden_size / t;
  d.ffn_up_width = m.activation == core::Activation::swiglu ? 2 * d.ffn : d.ffn;
  d.vocab = plan.padded_vocab_size() / t;
  d.element_bytes = core::bytes_per_element(plan.training.dtype);
  d.sequence_parallel = sp;
  d.tp = t;
  d.rmsnorm = m.normalization == core::Normalization::rmsnorm;
  d.swiglu = m.activation == core::Activation::swiglu;
  d.rotary = m.position_embedding == core::PositionEmbedding::rope;
  d.biases = m.add_bias_linear;
  return d;
}

namespace kb = core::kernel_bytes;

Op gemm(std::string_view name, int64_t m, int64_t n, int64_t k, core::GemmLayout layout = core::GemmLayout::nn) {
  Op op;
  op.name = name;
  op.kind = OpKind::gemm;
  op.m = m;
  op.n = n;
  op.k = k;
  op.layout = layout;
  op.flops = 2.0 * double(m) * double(n) * double(k);
  return op;
}

// The backward of Y = X·W is two GEMMs: dX = dY·Wᵀ (data gradient, "nt") and dW += Xᵀ·dY
// (weight gradient, "tn", accumulated over microbatches).
void add_gemm_backward(std::vector<Op>& ops, const Op& forward, std::string_view dgrad, std::string_view wgrad) {
  ops.push_back(gemm(dgrad, forward.m, forward.k, forward.n, core::GemmLayout::nt));
  ops.push_back(gemm(wgrad, forward.k, forward.n, forward.m, core::GemmLayout::tn));
}

// Causal attention of `heads` heads per sequence: Q·Kᵀ, masked softmax (with dropout), ·V.
// The backward does twice the forward's products (dV, dP, dQ, dK). FLOPs are those of full
// s×s products, as Megatron counts them, whatever a kernel skips above the diagonal.
Op attention(std::string_view name, int64_t batch, int64_t seq, int64_t head_dim, bool backward) {
  Op op;
  op.name = name;
  op.kind = OpKind::attention;
  op.batch = batch;
  op.m = seq;
  op.n = seq;
  op.k = head_dim;
  op.backward = backward;
  op.flops = (backward ? 8.0 : 4.0) * double(batch) * double(seq) * double(seq) * double(head_dim);
  return op;
}

// FlashAttention's causal kernels work on 128 × 128 tiles (FlashAttention-2 §3.1, -3 §3) and
// skip the tiles wholly above the diagonal: of T×T tiles, T(T+1)/2 run.
inline constexpr int64_t kFlashTile = 128;
double causal_tile_fraction(int64_t seq) {
  const double tiles = double((seq + kFlashTile - 1) / kFlashTile);
  return (tiles + 1.0) / (2.0 * tiles);
}

// Flash attention as one fused kernel: the forward runs Q·Kᵀ and P·V on the causal tiles only;
// the backward recomputes the scores from Q, K and the saved log-sum-exp, then runs dV = Pᵀ·dO,
// dP = dO·Vᵀ, dQ = dS·K and dK = dSᵀ·Q: five products to the forward's two (FlashAttention-2
// §3.1.2, which counts the backward at 2.5× the forward). Its HBM traffic is the operands and
// results: q, k, v and the output (and the forward's output again, dO, dq, dk, dv backward),
// plus one fp32 log-sum-exp per row.
Op flash_attention(std::string_view name, int64_t batch, int64_t seq, int64_t head_dim, bool backward,
                   double element_bytes) {
  Op op;
  op.name = name;
  op.kind = OpKind::attention;
  op.backend = core::AttentionBackend::flash;
  op.batch = batch;
  op.m = seq;
  op.n = seq;
  op.k = head_dim;
  op.backward = backward;
  const double products = backward ? 5.0 : 2.0;
  op.flops = products * 2.0 * double(batch) * double(seq) * double(seq) * double(head_dim) * causal_tile_fraction(seq);
  const double rows = double(batch) * double(seq);
  const double tensors = backward ? 8.0 : 4.0;
  op.attention_bytes = tensors * rows * double(head_dim) * element_bytes + rows * 4.0;
  return op;
}

Op elementwise(std::string_view name, std::string_view kernel, double bytes) {
  Op op;
  op.name = name;
  op.kind = OpKind::elementwise;
  op.kernel = kernel;
  op.bytes = bytes;
  return op;
}

Op collective(std::string_view name, Collective which, double bytes) {
  Op op;
  op.name = name;
  op.kind = OpKind::collective;
  op.collective = which;
  op.bytes = bytes;
  return op;
}

// Megatron's conjugate pair around a tensor-parallel region: entering it (f) is an identity
// forward and an all-reduce backward; leaving it (g) is an all-reduce forward and an identity
// backward. With sequence parallelism they become all-gather / reduce-scatter of the same volume
// (REFERENCE.md: b·s·h elements).
void add_enter_tp_region(std::vector<Op>& forward, std::vector<Op>& backward, const Dims& d) {
  if (d.tp == 1) return;
  const double bytes = double(d.tokens) * double(d.hidden) * d.element_bytes;
  if (d.sequence_parallel) {
    forward.push_back(collective("tp_all_gather", Collective::all_gather, bytes));
    backward.push_back(collective("tp_reduce_scatter", Collective::reduce_scatter, bytes));
    // Only this rank's rows of the region's input are kept: gathered again for the weight
    // gradient (Megatron overlaps it with the data-gradient GEMM; counted here in full).
    backward.push_back(collective("tp_all_gather_for_wgrad", Collective::all_gather, bytes));
  } else {
    backward.push_back(collective("tp_all_reduce", Collective::all_reduce, bytes));
  }
}

void add_leave_tp_region(std::vector<Op>& forward, std::vector<Op>& backward, const Dims& d) {
  if (d.tp == 1) return;
  const double bytes = double(d.tokens) * double(d.hidden) * d.element_bytes;
  if (d.sequence_parallel) {
    forward.push_back(collective("tp_reduce_scatter", Collective::reduce_scatter, bytes));
    backward.push_back(collective("tp_all_gather", Collective::all_gather, bytes));
  } else {
    forward.push_back(collective("tp_all_reduce", Collective::all_reduce, bytes));
  }
}

// LayerNorm, or RMSNorm, over the rows this device holds (all of them, or 1/t with sequence
// parallelism).
void add_norm(std::vector<Op>& forward, std::vector<Op>& backward, std::string_view name,
              std::string_view backward_name, const Dims& d) {
  const double rows = double(d.norm_tokens), width = double(d.hidden), e = d.element_bytes;
  if (d.rmsnorm) {
    forward.push_back(elementwise(name, kb::kRmsnorm, kb::rmsnorm_forward(rows, width, e)));
    backward.push_back(elementwise(backward_name, kb::kRmsnormBackward, kb::rmsnorm_backward(rows, width, e)));
    return;
  }
  forward.push_back(elementwise(name, kb::kLayernorm, kb::layernorm_forward(rows, width, e)));
  backward.push_back(elementwise(backward_name, kb::kLayernormBackward, kb::layernorm_backward(rows, width, e)));
}

// A linear layer's bias and its gradient, where the model has biases (GPT-2; Llama has none).
void add_bias(std::vector<Op>& forward, std::vector<Op>& backward, std::string_view name,
              std::string_view backward_name, double rows, double width, const Dims& d) {
  if (!d.biases) return;
  forward.push_back(elementwise(name, kb::kBias, kb::bias(rows, width, d.element_bytes)));
  backward.push_back(elementwise(backward_name, kb::kBiasBackward, kb::bias_backward(rows, width, d.element_bytes)));
}

// Bias + dropout + residual add of a block's output (Megatron fuses them), and its backward:
// the residual's gradient added to the branch's, and the bias gradient.
void add_residual(std::vector<Op>& forward, std::vector<Op>& backward, std::string_view name,
                  std::string_view backward_name, std::string_view bias_backward_name, const Dims& d) {
  const double rows = double(d.norm_tokens), width = double(d.hidden), elements = rows * width;
  if (d.biases) forward.push_back(elementwise(name, kb::kBias, kb::bias(rows, width, d.element_bytes)));
  forward.push_back(elementwise(name, kb::kResidual, kb::residual(elements, d.element_bytes)));
  backward.push_back(elementwise(backward_name, kb::kResidualBackward, kb::residual_backward(elements, d.element_bytes)));
  if (d.biases)
    backward.push_back(
        elementwise(bias_backward_name, kb::kBiasBackward, kb::bias_backward(rows, width, d.element_bytes)));
}

// Rotary positions turn q and k in place after the QKV projection (and their gradients back
// before its backward); with fewer query groups than heads, Loom's executor then copies each
// group's k and v to every head of the group for its multi-head attention kernels, and sums the
// copies' gradients back into the groups. `backward` is in forward order, reversed by the caller.
void add_positions_and_query_groups(std::vector<Op>& forward, std::vector<Op>& backward, const Dims& d) {
  const double rows = double(d.tokens), heads = double(d.heads), groups = double(d.query_groups),
               head_dim = double(d.head_dim), e = d.element_bytes;
  if (d.rotary) {
    forward.push_back(elementwise("rotary", kb::kRotary, kb::rotary_forward(rows, heads, groups, head_dim, e)));
    backward.push_back(
        elementwise("rotary.backward", kb::kRotaryBackward, kb::rotary_backward(rows, heads, groups, head_dim, e)));
  }
  if (d.query_groups == d.heads) return;
  forward.push_back(elementwise("expand_query_groups", kb::kQueryGroups,
                                kb::query_groups_forward(rows, heads, groups, head_dim, e)));
  backward.push_back(elementwise("reduce_query_groups", kb::kQueryGroupsBackward,
                                 kb::query_groups_backward(rows, heads, groups, head_dim, e)));
}

// With flash attention or recompute the executor keeps the groups only, not their copies (as
// Megatron's memory does): it copies them again just before the attention's backward. The unfused
// core without recompute keeps the copies (Megatron's repeat_interleave) and needs no second copy.
void add_query_groups_again(std::vector<Op>& backward, const Dims& d, bool keeps_groups_only) {
  if (d.query_groups == d.heads || !keeps_groups_only) return;
  backward.push_back(elementwise("expand_query_groups.again", kb::kQueryGroups,
                                 kb::query_groups_forward(double(d.tokens), double(d.heads), double(d.query_groups),
                                                          double(d.head_dim), d.element_bytes)));
}

}  // namespace

LayerOps transformer_layer_ops(const core::Plan& plan) {
  const Dims d = dims_of(plan);
  LayerOps ops;
  std::vector<Op>& fwd = ops.forward;
  std::vector<Op> bwd_reversed;  // built in forward order, reversed at the end

  // Attention block.
  add_norm(fwd, bwd_reversed, "input_norm", "input_norm.backward", d);
  add_enter_tp_region(fwd, bwd_reversed, d);
  const Op qkv = gemm("qkv", d.tokens, d.qkv_width, d.hidden);
  fwd.push_back(qkv);
  add_bias(fwd, bwd_reversed, "qkv.bias", "qkv.bias.backward", double(d.tokens), double(d.qkv_width), d);
  add_gemm_backward(bwd_reversed, qkv, "qkv.dgrad", "qkv.wgrad");
  add_positions_and_query_groups(fwd, bwd_reversed, d);

  const bool flash = plan.parallel.attention_backend == core::AttentionBackend::flash;
  const int64_t heads = d.micro_batch * d.heads;
  const core::AttentionBackend backend = plan.parallel.attention_backend;
  const Op core = attention_core("attention", backend, heads, d.seq, d.head_dim, false, d.element_bytes);
  fwd.push_back(core);
  bwd_reversed.push_back(attention_core("attention.backward", backend, heads, d.seq, d.head_dim, true, d.element_bytes));
  add_query_groups_again(bwd_reversed, d, flash || plan.parallel.recompute != core::Recompute::none);

  const Op projection = gemm("attention_projection", d.tokens, d.hidden, d.heads * d.head_dim);
  fwd.push_back(projection);
  add_gemm_backward(bwd_reversed, projection, "attention_projection.dgrad", "attention_projection.wgrad");
  add_leave_tp_region(fwd, bwd_reversed, d);
  add_residual(fwd, bwd_reversed, "attention_residual", "attention_residual.backward", "attention_projection.bias.backward", d);

  // MLP block.
  add_norm(fwd, bwd_reversed, "mlp_norm", "mlp_norm.backward", d);
  add_enter_tp_region(fwd, bwd_reversed, d);
  const Op up = gemm("mlp_up", d.tokens, d.ffn_up_width, d.hidden);
  fwd.push_back(up);
  add_bias(fwd, bwd_reversed, "mlp_up.bias", "mlp_up.bias.backward", double(d.tokens), double(d.ffn_up_width), d);
  add_gemm_backward(bwd_reversed, up, "mlp_up.dgrad", "mlp_up.wgrad");
  // GELU over the b·s·f/t outputs of the up projection, or SwiGLU over its fused gate and up
  // halves (2·b·s·f/t) giving b·s·f/t.
  const double rows = double(d.tokens), ffn = double(d.ffn);
  if (d.swiglu) {
    fwd.push_back(elementwise("mlp_activation", kb::kSwiglu, kb::swiglu_forward(rows, ffn, d.element_bytes)));
    bwd_reversed.push_back(
        elementwise("mlp_activation.backward", kb::kSwigluBackward, kb::swiglu_backward(rows, ffn, d.element_bytes)));
  } else {
    fwd.push_back(elementwise("mlp_activation", kb::kGelu, kb::gelu_forward(rows * ffn, rows * ffn, d.element_bytes)));
    bwd_reversed.push_back(elementwise("mlp_activation.backward", kb::kGeluBackward,
                                       kb::gelu_backward(rows * ffn, rows * ffn, d.element_bytes)));
  }
  const Op down = gemm("mlp_down", d.tokens, d.hidden, d.ffn);
  fwd.push_back(down);
  add_gemm_backward(bwd_reversed, down, "mlp_down.dgrad", "mlp_down.wgrad");
  add_leave_tp_region(fwd, bwd_reversed, d);
  add_residual(fwd, bwd_reversed, "mlp_residual", "mlp_residual.backward", "mlp_down.bias.backward", d);

  ops.backward.assign(bwd_reversed.rbegin(), bwd_reversed.rend());
  switch (plan.parallel.recompute) {
    case core::Recompute::none: break;
    // Korthikanti: the attention core only. Flash attention keeps no s² activations, so there is
    // nothing left to recompute (as Megatron-Core's selective recompute with flash attention).
    case core::Recompute::selective:
      if (!flash) ops.recompute = {core};
      break;
    case core::Recompute::full: ops.recompute = ops.forward; break;    // the whole layer from its input
  }
  return ops;
}

LayerOps embedding_ops(const core::Plan& plan) {
  const Dims d = dims_of(plan);
  LayerOps ops;
  const double activation = double(d.tokens) * double(d.hidden) * d.element_bytes;
  // Vocab-parallel lookup (+ learned positions), then the partial embeddings are summed over
  // the tensor group (reduce-scattered along the sequence with sequence parallelism), then dropout.
  ops.forward.push_back(elementwise("embedding_lookup", kb::kEmbedding,
                                    kb::embedding_forward(double(d.tokens), double(d.hidden), d.element_bytes)));
  if (d.tp > 1)
    ops.forward.push_back(d.sequence_parallel
                              ? collective("tp_reduce_scatter", Collective::reduce_scatter, activation)
                              : collective("tp_all_reduce", Collective::all_reduce, activation));
  ops.forward.push_back(elementwise("embedding_dropout", kb::kDropout,
                                    kb::dropout(double(d.norm_tokens) * double(d.hidden), d.element_bytes)));
  // Backward: gradients are scattered into the (fp32) embedding gradient rows.
  if (d.tp > 1 && d.sequence_parallel)
    ops.backward.push_back(collective("tp_all_gather", Collective::all_gather, activation));
  ops.backward.push_back(elementwise("embedding_lookup.backward", kb::kEmbeddingBackward,
                                     kb::embedding_backward(double(d.tokens), double(d.hidden), d.element_bytes)));
  return ops;
}

LayerOps output_layer_ops(const core::Plan& plan) {
  const Dims d = dims_of(plan);
  LayerOps ops;
  std::vector<Op> bwd_reversed;
  add_norm(ops.forward, bwd_reversed, "final_norm", "final_norm.backward", d);
  add_enter_tp_region(ops.forward, bwd_reversed, d);
  // Logits = X·Eᵀ against the [vocabulary × hidden] embedding (or output) weight: the forward
  // multiplies by a transposed weight, the data gradient by the weight itself.
  const Op logits = gemm("logits", d.tokens, d.vocab, d.hidden, core::GemmLayout::nt);
  ops.forward.push_back(logits);
  bwd_reversed.push_back(gemm("logits.dgrad", d.tokens, d.hidden, d.vocab, core::GemmLayout::nn));
  bwd_reversed.push_back(gemm("logits.wgrad", d.vocab, d.hidden, d.tokens, core::GemmLayout::tn));
  // Vocab-parallel cross-entropy: reads the 16-bit logits, keeps an fp32 softmax for the
  // backward; three all-reduces of one fp32 value per token (max, sum of exp, target logit).
  ops.forward.push_back(elementwise("cross_entropy", kb::kCrossEntropy,
                                    kb::cross_entropy_forward(double(d.tokens), double(d.vocab), d.element_bytes)));
  if (d.tp > 1)
    for (std::string_view name : {"loss_all_reduce_max", "loss_all_reduce_sum", "loss_all_reduce_target"})
      ops.forward.push_back(collective(name, Collective::all_reduce, double(d.tokens) * 4.0));
  bwd_reversed.push_back(elementwise("cross_entropy.backward", kb::kCrossEntropyBackward,
                                     kb::cross_entropy_backward(double(d.tokens), double(d.vocab), d.element_bytes)));
  ops.backward.assign(bwd_reversed.rbegin(), bwd_reversed.rend());
  return ops;
}

Op attention_core(std::string_view name, core::AttentionBackend backend, int64_t batch, int64_t seq, int64_t head_dim,
                  bool backward, double element_bytes) {
  return backend == core::AttentionBackend::flash ? flash_attention(name, batch, seq, head_dim, backward, element_bytes)
                                                  : attention(name, batch, seq, head_dim, backward);
}

double total_flops(const std::vector<Op>& ops) {
  double flops = 0;
  for (const Op& op : ops) flops += op.flops;
  return flops;
}

}  // namespace loom::sim
