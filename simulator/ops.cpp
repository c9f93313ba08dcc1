#include "simulator/ops.hpp"

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
  int64_t head_dim;       // d
  int64_t seq;            // s
  int64_t micro_batch;    // b
  int64_t ffn;            // f/t
  int64_t ffn_up_width;   // f/t, or 2f/t for SwiGLU's gate and up projections
  int64_t vocab;          // V/t
  double element_bytes;   // 2 for bf16/fp16, 4 for fp32
  bool sequence_parallel;
  int64_t tp;
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
  d.qkv_width = (m.hidden_size + 2 * m.num_query_groups * m.kv_channels()) / t;
  d.heads = m.num_attention_heads / t;
  d.head_dim = m.kv_channels();
  d.seq = m.seq_length;
  d.micro_batch = b;
  d.ffn = m.ffn_hidden_size / t;
  d.ffn_up_width = m.activation == core::Activation::swiglu ? 2 * d.ffn : d.ffn;
  d.vocab = m.padded_vocab_size / t;
  d.element_bytes = core::bytes_per_element(plan.training.dtype);
  d.sequence_parallel = sp;
  d.tp = t;
  return d;
}

Op gemm(std::string_view name, int64_t m, int64_t n, int64_t k, int64_t batch = 1) {
  Op op;
  op.name = name;
  op.kind = OpKind::gemm;
  op.m = m;
  op.n = n;
  op.k = k;
  op.batch = batch;
  op.flops = 2.0 * double(m) * double(n) * double(k) * double(batch);
  return op;
}

// The backward of C = A·B is two GEMMs: dA = dC·Bᵀ (data gradient) and dB = Aᵀ·dC (weight
// gradient); for attention's batched products both operands are activations, same shapes.
void add_gemm_backward(std::vector<Op>& ops, const Op& forward, std::string_view dgrad, std::string_view wgrad) {
  ops.push_back(gemm(dgrad, forward.m, forward.k, forward.n, forward.batch));
  ops.push_back(gemm(wgrad, forward.k, forward.n, forward.m, forward.batch));
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

// Norm: reads x, writes y (forward); reads x, dy, writes dx (backward) — the statistics and
// the parameters are negligible next to the activations.
double norm_bytes(const Dims& d, int passes) {
  return double(passes) * double(d.norm_tokens) * double(d.hidden) * d.element_bytes;
}

// Fused bias + dropout + residual add: reads the branch and the residual, writes the sum and
// a one-byte dropout mask.
double residual_bytes(const Dims& d) {
  return double(d.norm_tokens) * double(d.hidden) * (3.0 * d.element_bytes + 1.0);
}

}  // namespace

LayerOps transformer_layer_ops(const core::Plan& plan) {
  const Dims d = dims_of(plan);
  LayerOps ops;
  std::vector<Op>& fwd = ops.forward;
  std::vector<Op> bwd_reversed;  // built in forward order, reversed at the end

  // Attention block.
  fwd.push_back(elementwise("input_norm", "layernorm", norm_bytes(d, 2)));
  bwd_reversed.push_back(elementwise("input_norm.backward", "layernorm", norm_bytes(d, 3)));
  add_enter_tp_region(fwd, bwd_reversed, d);
  const Op qkv = gemm("qkv", d.tokens, d.qkv_width, d.hidden);
  fwd.push_back(qkv);
  add_gemm_backward(bwd_reversed, qkv, "qkv.dgrad", "qkv.wgrad");

  // Attention core: scores = Q·Kᵀ per head, softmax with scale, mask and dropout, then ·V.
  std::vector<Op> core_ops;
  const int64_t score_batch = d.micro_batch * d.heads;
  const Op scores = gemm("attention_scores", d.seq, d.seq, d.head_dim, score_batch);
  const double score_elements = double(score_batch) * double(d.seq) * double(d.seq);
  // Softmax reads and writes the scores; dropout reads them, writes them and a one-byte mask.
  const Op softmax = elementwise("attention_softmax_dropout", "softmax", score_elements * (4.0 * d.element_bytes + 1.0));
  const Op values = gemm("attention_values", d.seq, d.head_dim, d.seq, score_batch);
  core_ops = {scores, softmax, values};
  fwd.insert(fwd.end(), core_ops.begin(), core_ops.end());
  add_gemm_backward(bwd_reversed, scores, "attention_scores.dgrad_q", "attention_scores.dgrad_k");
  bwd_reversed.push_back(elementwise("attention_softmax_dropout.backward", "softmax", score_elements * (3.0 * d.element_bytes + 1.0)));
  add_gemm_backward(bwd_reversed, values, "attention_values.dgrad_p", "attention_values.dgrad_v");

  const Op projection = gemm("attention_projection", d.tokens, d.hidden, d.heads * d.head_dim);
  fwd.push_back(projection);
  add_gemm_backward(bwd_reversed, projection, "attention_projection.dgrad", "attention_projection.wgrad");
  add_leave_tp_region(fwd, bwd_reversed, d);
  fwd.push_back(elementwise("attention_residual", "elementwise", residual_bytes(d)));
  bwd_reversed.push_back(elementwise("attention_residual.backward", "elementwise", residual_bytes(d)));

  // MLP block.
  fwd.push_back(elementwise("mlp_norm", "layernorm", norm_bytes(d, 2)));
  bwd_reversed.push_back(elementwise("mlp_norm.backward", "layernorm", norm_bytes(d, 3)));
  add_enter_tp_region(fwd, bwd_reversed, d);
  const Op up = gemm("mlp_up", d.tokens, d.ffn_up_width, d.hidden);
  fwd.push_back(up);
  add_gemm_backward(bwd_reversed, up, "mlp_up.dgrad", "mlp_up.wgrad");
  // Bias + GELU (or SwiGLU's gate): reads the up projection, writes the activation.
  const double activation_bytes = double(d.tokens) * double(d.ffn_up_width + d.ffn) * d.element_bytes;
  fwd.push_back(elementwise("mlp_activation", "gelu", activation_bytes));
  bwd_reversed.push_back(elementwise("mlp_activation.backward", "gelu", activation_bytes + double(d.tokens) * double(d.ffn) * d.element_bytes));
  const Op down = gemm("mlp_down", d.tokens, d.hidden, d.ffn);
  fwd.push_back(down);
  add_gemm_backward(bwd_reversed, down, "mlp_down.dgrad", "mlp_down.wgrad");
  add_leave_tp_region(fwd, bwd_reversed, d);
  fwd.push_back(elementwise("mlp_residual", "elementwise", residual_bytes(d)));
  bwd_reversed.push_back(elementwise("mlp_residual.backward", "elementwise", residual_bytes(d)));

  ops.backward.assign(bwd_reversed.rbegin(), bwd_reversed.rend());
  switch (plan.parallel.recompute) {
    case core::Recompute::none: break;
    case core::Recompute::selective: ops.recompute = core_ops; break;  // Korthikanti: the attention core only
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
  ops.forward.push_back(elementwise("embedding_lookup", "embedding", 3.0 * activation));
  if (d.tp > 1)
    ops.forward.push_back(d.sequence_parallel
                              ? collective("tp_reduce_scatter", Collective::reduce_scatter, activation)
                              : collective("tp_all_reduce", Collective::all_reduce, activation));
  ops.forward.push_back(elementwise("embedding_dropout", "elementwise", double(d.norm_tokens) * double(d.hidden) * (2.0 * d.element_bytes + 1.0)));
  // Backward: gradients are scattered into the (fp32) embedding gradient rows.
  if (d.tp > 1 && d.sequence_parallel)
    ops.backward.push_back(collective("tp_all_gather", Collective::all_gather, activation));
  ops.backward.push_back(elementwise("embedding_lookup.backward", "embedding", activation + double(d.tokens) * double(d.hidden) * 8.0));
  return ops;
}

LayerOps output_layer_ops(const core::Plan& plan) {
  const Dims d = dims_of(plan);
  LayerOps ops;
  std::vector<Op> bwd_reversed;
  ops.forward.push_back(elementwise("final_norm", "layernorm", norm_bytes(d, 2)));
  bwd_reversed.push_back(elementwise("final_norm.backward", "layernorm", norm_bytes(d, 3)));
  add_enter_tp_region(ops.forward, bwd_reversed, d);
  const Op logits = gemm("logits", d.tokens, d.vocab, d.hidden);
  ops.forward.push_back(logits);
  add_gemm_backward(bwd_reversed, logits, "logits.dgrad", "logits.wgrad");
  // Vocab-parallel cross-entropy: reads the 16-bit logits, keeps an fp32 softmax for the
  // backward; three all-reduces of one fp32 value per token (max, sum of exp, target logit).
  const double logit_elements = double(d.tokens) * double(d.vocab);
  ops.forward.push_back(elementwise("cross_entropy", "cross_entropy", logit_elements * (d.element_bytes + 4.0 + 4.0)));
  if (d.tp > 1)
    for (std::string_view name : {"loss_all_reduce_max", "loss_all_reduce_sum", "loss_all_reduce_target"})
      ops.forward.push_back(collective(name, Collective::all_reduce, double(d.tokens) * 4.0));
  bwd_reversed.push_back(elementwise("cross_entropy.backward", "cross_entropy", logit_elements * (4.0 + d.element_bytes)));
  ops.backward.assign(bwd_reversed.rbegin(), bwd_reversed.rend());
  return ops;
}

double total_flops(const std::vector<Op>& ops) {
  double flops = 0;
  for (const Op& op : ops) flops += op.flops;
  return flops;
}

}  // namespace loom::sim
