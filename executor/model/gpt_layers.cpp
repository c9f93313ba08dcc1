// GptStage's transformer layer, embedding and output layer: forward and backward.

#include "executor/model/activations.hpp"
#include "executor/model/attention_core.hpp"
#include "executor/model/gpt_stage.hpp"

#include "core/error.hpp"

#include <cmath>
#include <cstring>

namespace loom::exec {

namespace {

// GPT-2's LayerNorm and Llama 2's RMSNorm epsilon (Megatron's --norm-epsilon default).
constexpr float kNormEps = 1e-5f;

}  // namespace

std::vector<float> GptStage::host_floats(const Tensor& x) {
  Tensor host({x.numel()}, ElementType::f32, Device::cpu);
  kernels_.copy(x, host);
  return std::vector<float>(host.data<float>(), host.data<float>() + host.numel());
}

void GptStage::upload_floats(const std::vector<float>& values, Tensor& x) {
  Tensor host({int64_t(values.size())}, ElementType::f32, Device::cpu);
  std::memcpy(host.data<float>(), values.data(), values.size() * sizeof(float));
  kernels_.copy(host, x);
}

// The layer's building blocks, the same for both families: what differs is read off the
// parameters (a norm's bias or none, a weight's layout, a linear's bias or none).

void GptStage::norm_forward(const NormParameters& n, const Tensor& x, Tensor& y, Tensor& mean, Tensor& rstd) {
  rstd = precision_.f32({x.dim(0)});
  if (n.bias) {
    mean = precision_.f32({x.dim(0)});
    kernels_.layernorm_forward(x, n.gain->value, n.bias->value, kNormEps, y, mean, rstd);
  } else {
    kernels_.rmsnorm_forward(x, n.gain->value, kNormEps, y, rstd);
  }
}

void GptStage::norm_backward(const NormParameters& n, const Tensor& dy, const Tensor& x, const Tensor& mean,
                             const Tensor& rstd, Tensor& dx) {
  if (n.bias)
    kernels_.layernorm_backward(dy, x, n.gain->value, mean, rstd, dx, n.gain->grad, n.bias->grad);
  else
    kernels_.rmsnorm_backward(dy, x, n.gain->value, rstd, dx, n.gain->grad);
}

// y = x·W ([in, out] storage) or x·Wᵀ ([out, in]).
void GptStage::linear_forward(const LinearParameters& l, const Tensor& x, Tensor& y) {
  kernels_.matmul(x, false, l.weight, l.out_major, y);
}

// dx = dy·Wᵀ, and the weight gradient accumulated: xᵀ·dy ([in, out]) or dyᵀ·x ([out, in]).
void GptStage::linear_backward_input(const LinearParameters& l, const Tensor& dy, Tensor& dx) {
  kernels_.matmul(dy, false, l.weight, !l.out_major, dx);
}

void GptStage::linear_backward_weight(const LinearParameters& l, const Tensor& x, const Tensor& dy) {
  Tensor grad = l.weight_grad;
  if (l.out_major)
    kernels_.matmul(dy, true, x, false, grad, 1.0f, 1.0f);
  else
    kernels_.matmul(x, true, dy, false, grad, 1.0f, 1.0f);
}

// [rows, 3·(a/t)·d]: each of this rank's query heads with its own copy of its group's k and v,
// for the multi-head attention kernels.
Tensor GptStage::expanded_qkv(const Tensor& grouped) {
  const core::ModelSpec& m = plan_.model;
  const int64_t t = tp_.size(), heads = m.num_attention_heads / t, groups = m.query_groups() / t;
  const int64_t b = plan_.parallel.micro_batch_size, s = m.seq_length;
  Tensor full = precision_.activation({grouped.dim(0), 3 * heads * m.kv_channels()});
  Tensor full3 = full.reshaped({b, s, full.dim(1)});
  kernels_.expand_query_groups(grouped.reshaped({b, s, grouped.dim(1)}), heads, groups, full3);
  return full;
}

Tensor GptStage::layer_forward(const LayerParameters& w, const Tensor& x, LayerActivations& a, bool keep_all) {
  const core::ModelSpec& m = plan_.model;
  const int64_t h = m.hidden_size, t = tp_.size(), heads = m.num_attention_heads / t, groups = m.query_groups() / t;
  const int64_t b = plan_.parallel.micro_batch_size, s = m.seq_length, rows = b * s, rows_local = x.dim(0);
  const int64_t head_dim = m.kv_channels(), f = m.ffn_hidden_size / t;
  const bool swiglu = m.activation == core::Activation::swiglu;
  Kernels& k = kernels_;

  a.input = x;
  a.ln1 = precision_.activation({rows_local, h});
  norm_forward(w.norm_1, x, a.ln1, a.ln1_mean, a.ln1_rstd);
  a.ln1_full = tp_.enter(a.ln1);
  // q, k and v of this rank's heads and query groups, [q | k | v] along each row.
  Tensor qkv = precision_.activation({rows, (heads + 2 * groups) * head_dim});
  linear_forward(w.qkv, a.ln1_full, qkv);
  // With sequence parallelism only this rank's rows are kept; the backward gathers them again
  // for the weight gradient, as Megatron does (Korthikanti et al. §4.2.2 count them so).
  if (tp_.sequence_parallel()) a.ln1_full = Tensor();
  if (w.qkv.bias) k.add_bias(qkv, w.qkv.bias->value);
  if (m.position_embedding == core::PositionEmbedding::rope) {
    Tensor qkv3 = qkv.reshaped({b, s, qkv.dim(1)});
    k.rotary_forward(qkv3, heads, groups, float(m.rotary_base));
  }
  if (groups != heads) {  // the attention kernels read one k and v per head: expand, keep the groups
    a.qkv_grouped = qkv;
    a.qkv = expanded_qkv(qkv);
  } else {
    a.qkv = qkv;
  }
  const AttentionCore attention_core(k, precision_, plan_.parallel.attention_backend, b, s, heads, h / t);
  a.attention = precision_.activation({rows, h / t});
  attention_core.forward(a);
  // Which of the two a grouped layer keeps is Megatron's choice, which the memory model counts:
  // the unfused core's products saved the per-head copies of k and v (repeat_interleave), so
  // those stay and the groups go; flash attention and recompute keep the groups only, and the
  // backward expands them again.
  if (groups != heads) {
    if (plan_.parallel.attention_backend == core::AttentionBackend::unfused &&
        plan_.parallel.recompute == core::Recompute::none)
      a.qkv_grouped = Tensor();
    else
      a.qkv = Tensor();
  }
  Tensor projection = precision_.activation({rows, h});
  linear_forward(w.projection, a.attention, projection);
  Tensor projection_local = tp_.leave(projection);
  if (w.projection.bias) k.add_bias(projection_local, w.projection.bias->value);
  a.after_attention = precision_.activation({rows_local, h});
  k.add(x, projection_local, a.after_attention);

  a.ln2 = precision_.activation({rows_local, h});
  norm_forward(w.norm_2, a.after_attention, a.ln2, a.ln2_mean, a.ln2_rstd);
  a.ln2_full = tp_.enter(a.ln2);
  a.fc = precision_.activation({rows, swiglu ? 2 * f : f});  // SwiGLU: [gate | up]
  linear_forward(w.fc, a.ln2_full, a.fc);
  if (tp_.sequence_parallel()) a.ln2_full = Tensor();
  if (w.fc.bias) k.add_bias(a.fc, w.fc.bias->value);
  a.gelu = precision_.activation({rows, f});
  if (swiglu)
    k.swiglu_forward(a.fc, a.gelu);
  else
    k.gelu_forward(a.fc, a.gelu);
  Tensor down = precision_.activation({rows, h});
  linear_forward(w.fc_out, a.gelu, down);
  Tensor down_local = tp_.leave(down);
  if (w.fc_out.bias) k.add_bias(down_local, w.fc_out.bias->value);
  Tensor out = precision_.activation({rows_local, h});
  k.add(a.after_attention, down_local, out);

  a.complete = true;
  if (keep_all) return out;
  switch (plan_.parallel.recompute) {
    case core::Recompute::none: break;
    case core::Recompute::selective: attention_core.drop_for_selective_recompute(a); break;  // recomputed from qkv
    case core::Recompute::full: {
      const Tensor input = a.input;
      a = LayerActivations{};
      a.input = input;
      break;
    }
  }
  return out;
}

Tensor GptStage::layer_backward(const LayerParameters& w, const Tensor& grad, LayerActivations& a) {
  const core::ModelSpec& m = plan_.model;
  const int64_t h = m.hidden_size, t = tp_.size(), heads = m.num_attention_heads / t, groups = m.query_groups() / t;
  const int64_t b = plan_.parallel.micro_batch_size, s = m.seq_length, rows = b * s, rows_local = grad.dim(0);
  const int64_t head_dim = m.kv_channels(), f = m.ffn_hidden_size / t;
  const bool swiglu = m.activation == core::Activation::swiglu;
  Kernels& k = kernels_;

  if (!a.complete) {  // full recompute: run the layer again from its input, its collectives too
    // (which TensorParallel times as recompute while this scope is the innermost)
    ScopedTimer timer(timers_, Category::recompute);
    layer_forward(w, a.input, a, /*keep_all=*/true);
  }
  // MLP block: out = after_attention + fc_out(act(fc(norm_2(after_attention)))).
  if (w.fc_out.bias) k.bias_backward(grad, w.fc_out.bias->grad);
  const Tensor down_full = tp_.leave_backward(grad);
  Tensor dact = precision_.activation({rows, f});
  linear_backward_input(w.fc_out, down_full, dact);
  linear_backward_weight(w.fc_out, a.gelu, down_full);
  Tensor dfc = precision_.activation({rows, swiglu ? 2 * f : f});
  if (swiglu)
    k.swiglu_backward(dact, a.fc, dfc);
  else
    k.gelu_backward(dact, a.fc, dfc);
  if (w.fc.bias) k.bias_backward(dfc, w.fc.bias->grad);
  const Tensor ln2_full = a.ln2_full.defined() ? a.ln2_full : tp_.enter(a.ln2);
  linear_backward_weight(w.fc, ln2_full, dfc);
  Tensor dln2_full = precision_.activation({rows, h});
  linear_backward_input(w.fc, dfc, dln2_full);
  const Tensor dln2 = tp_.enter_backward(dln2_full);
  Tensor dafter = precision_.activation({rows_local, h});
  norm_backward(w.norm_2, dln2, a.after_attention, a.ln2_mean, a.ln2_rstd, dafter);
  k.add(dafter, grad, dafter);

  // Attention block: after_attention = input + projection(attention(qkv(norm_1(input)))).
  if (w.projection.bias) k.bias_backward(dafter, w.projection.bias->grad);
  const Tensor projection_full = tp_.leave_backward(dafter);
  Tensor dattention = precision_.activation({rows, h / t});
  linear_backward_input(w.projection, projection_full, dattention);
  linear_backward_weight(w.projection, a.attention, projection_full);
  if (!a.qkv.defined()) a.qkv = expanded_qkv(a.qkv_grouped);  // the groups only were kept: expand again
  const AttentionCore attention_core(k, precision_, plan_.parallel.attention_backend, b, s, heads, h / t);
  if (attention_core.needs_recompute(a)) {  // selective recompute: the attention core only
    ScopedTimer timer(timers_, Category::recompute);
    attention_core.recompute(a);
  }
  Tensor dqkv = attention_core.backward(dattention, a);
  if (groups != heads) {  // each group's k and v gradients summed over the heads that shared them
    Tensor grouped = precision_.activation({rows, (heads + 2 * groups) * head_dim});
    Tensor grouped3 = grouped.reshaped({b, s, grouped.dim(1)});
    k.reduce_query_groups(dqkv.reshaped({b, s, dqkv.dim(1)}), heads, groups, grouped3);
    dqkv = grouped;
  }
  if (m.position_embedding == core::PositionEmbedding::rope) {
    Tensor dqkv3 = dqkv.reshaped({b, s, dqkv.dim(1)});
    k.rotary_backward(dqkv3, heads, groups, float(m.rotary_base));
  }
  if (w.qkv.bias) k.bias_backward(dqkv, w.qkv.bias->grad);
  const Tensor ln1_full = a.ln1_full.defined() ? a.ln1_full : tp_.enter(a.ln1);
  linear_backward_weight(w.qkv, ln1_full, dqkv);
  Tensor dln1_full = precision_.activation({rows, h});
  linear_backward_input(w.qkv, dqkv, dln1_full);
  const Tensor dln1 = tp_.enter_backward(dln1_full);
  Tensor dinput = precision_.activation({rows_local, h});
  norm_backward(w.norm_1, dln1, a.input, a.ln1_mean, a.ln1_rstd, dinput);
  k.add(dinput, dafter, dinput);
  return dinput;
}

Tensor GptStage::embed(const int32_t* tokens, ChunkActivations& saved) {
  const core::ModelSpec& m = plan_.model;
  const int64_t rows = plan_.parallel.micro_batch_size * m.seq_length, h = m.hidden_size;
  saved.tokens = precision_.tokens(tokens, rows, kernels_);
  Tensor partial = precision_.activation({rows, h});
  kernels_.embedding_forward(saved.tokens, embedding_->tokens.value, tp_.rank() * vocab_shard_, partial);
  Tensor x = tp_.leave(partial);  // the vocabulary shards' rows summed (and sliced with SP)
  if (!embedding_->positions) return x;  // rotary positions are applied in each layer's attention
  // Positions of this rank's rows: row r of the microbatch is position r mod s.
  const int64_t first_row = tp_.sequence_parallel() ? tp_.rank() * x.dim(0) : 0;
  std::vector<int32_t> positions(size_t(x.dim(0)));
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = int32_t((first_row + int64_t(i)) % m.seq_length);
  Tensor position_rows = precision_.activation({x.dim(0), h});
  kernels_.embedding_forward(precision_.tokens(positions.data(), x.dim(0), kernels_), embedding_->positions->value, 0, position_rows);
  kernels_.add(x, position_rows, x);
  return x;
}

Tensor GptStage::embed_backward(const Tensor& grad, const ChunkActivations& saved) {
  const core::ModelSpec& m = plan_.model;
  const Tensor full = tp_.leave_backward(grad);  // every rank needs all rows for its vocabulary shard
  if (embedding_->positions) {
    std::vector<int32_t> positions(size_t(full.dim(0)));
    for (size_t i = 0; i < positions.size(); ++i) positions[i] = int32_t(int64_t(i) % m.seq_length);
    kernels_.embedding_backward(full, precision_.tokens(positions.data(), full.dim(0), kernels_), 0,
                                embedding_->positions->grad);
  }
  kernels_.embedding_backward(full, saved.tokens, tp_.rank() * vocab_shard_, embedding_->tokens.grad);
  return Tensor();
}

void GptStage::output_forward(const Tensor& x, const int32_t* targets, ChunkActivations& saved) {
  const core::ModelSpec& m = plan_.model;
  const int64_t rows = plan_.parallel.micro_batch_size * m.seq_length, h = m.hidden_size;
  const OutputParameters& w = *output_;
  saved.lnf_input = x;
  saved.lnf = precision_.activation({x.dim(0), h});
  norm_forward(w.norm, x, saved.lnf, saved.lnf_mean, saved.lnf_rstd);
  saved.lnf_full = tp_.enter(saved.lnf);
  saved.logits = precision_.activation({rows, vocab_shard_});
  kernels_.matmul(saved.lnf_full, false, w.head.value, true, saved.logits);
  if (tp_.sequence_parallel()) saved.lnf_full = Tensor();  // gathered again in the backward
  // Vocab-parallel cross-entropy: no rank ever holds the full logits.
  saved.targets = precision_.tokens(targets, rows, kernels_);
  saved.row_max = precision_.f32({rows});
  saved.sum_exp = precision_.f32({rows});
  Tensor target_logit = precision_.f32({rows});
  const int64_t vocab_start = tp_.rank() * vocab_shard_;
  kernels_.cross_entropy_partials(saved.logits, saved.targets, vocab_start, saved.row_max, saved.sum_exp, target_logit);
  // The global row max and Σ exp rescaled to it, then summed over the vocabulary shards. These
  // are [rows] vectors: the rescale and the loss run on the host (one small copy each way).
  Tensor local_max = saved.row_max.clone();
  tp_.all_reduce_max(saved.row_max);
  const std::vector<float> global = host_floats(saved.row_max);
  if (tp_.size() > 1) {
    const std::vector<float> mine = host_floats(local_max);
    std::vector<float> sum = host_floats(saved.sum_exp);
    for (int64_t r = 0; r < rows; ++r) sum[r] *= std::exp(mine[r] - global[r]);
    upload_floats(sum, saved.sum_exp);
  }
  tp_.all_reduce(saved.sum_exp);
  tp_.all_reduce(target_logit);
  const std::vector<float> sum = host_floats(saved.sum_exp), target = host_floats(target_logit);
  double loss = 0;
  for (int64_t r = 0; r < rows; ++r) loss += std::log(double(sum[r])) + double(global[r]) - double(target[r]);
  loss_sum_ += loss / double(rows);
}

Tensor GptStage::output_backward(const ChunkActivations& saved, float loss_scale) {
  const core::ModelSpec& m = plan_.model;
  const int64_t rows = plan_.parallel.micro_batch_size * m.seq_length, h = m.hidden_size;
  const OutputParameters& w = *output_;
  Tensor dlogits = precision_.activation({rows, vocab_shard_});
  kernels_.cross_entropy_backward(saved.logits, saved.targets, tp_.rank() * vocab_shard_, saved.row_max, saved.sum_exp,
                                  loss_scale / float(rows), dlogits);
  const Tensor lnf_full = saved.lnf_full.defined() ? saved.lnf_full : tp_.enter(saved.lnf);
  kernels_.matmul(dlogits, true, lnf_full, false, w.head.grad, 1.0f, 1.0f);
  Tensor dlnf_full = precision_.activation({rows, h});
  kernels_.matmul(dlogits, false, w.head.value, false, dlnf_full);
  const Tensor dlnf = tp_.enter_backward(dlnf_full);
  Tensor dx = precision_.activation({saved.lnf_input.dim(0), h});
  norm_backward(w.norm, dlnf, saved.lnf_input, saved.lnf_mean, saved.lnf_rstd, dx);
  return dx;
}

}  // namespace loom::exec
