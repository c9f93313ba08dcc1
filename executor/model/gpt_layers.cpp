// GptStage's transformer layer, embedding and output layer: forward and backward.

#include "executor/model/activations.hpp"
#include "executor/model/attention_core.hpp"
#include "executor/model/gpt_stage.hpp"

#include "core/error.hpp"

#include <cmath>
#include <cstring>

namespace loom::exec {

namespace {

constexpr float kLayerNormEps = 1e-5f;

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

Tensor GptStage::layer_forward(const LayerParameters& w, const Tensor& x, LayerActivations& a, bool keep_all) {
  const core::ModelSpec& m = plan_.model;
  const int64_t h = m.hidden_size, t = tp_.size(), heads = m.num_attention_heads / t;
  const int64_t b = plan_.parallel.micro_batch_size, s = m.seq_length, rows = b * s, rows_local = x.dim(0);
  Kernels& k = kernels_;

  a.input = x;
  a.ln1 = precision_.activation({rows_local, h});
  a.ln1_mean = precision_.f32({rows_local});
  a.ln1_rstd = precision_.f32({rows_local});
  k.layernorm_forward(x, w.ln_1.weight.value, w.ln_1.bias.value, kLayerNormEps, a.ln1, a.ln1_mean, a.ln1_rstd);
  a.ln1_full = tp_.enter(a.ln1);
  a.qkv = precision_.activation({rows, 3 * h / t});
  k.matmul(a.ln1_full, false, w.attn_c_attn.weight.value, false, a.qkv);
  // With sequence parallelism only this rank's rows are kept; the backward gathers them again
  // for the weight gradient, as Megatron does (Korthikanti et al. §4.2.2 count them so).
  if (tp_.sequence_parallel()) a.ln1_full = Tensor();
  k.add_bias(a.qkv, w.attn_c_attn.bias.value);
  const AttentionCore attention_core(k, precision_, plan_.parallel.attention_backend, b, s, heads, h / t);
  a.attention = precision_.activation({rows, h / t});
  attention_core.forward(a);
  Tensor projection = precision_.activation({rows, h});
  k.matmul(a.attention, false, w.attn_c_proj.weight.value, false, projection);
  Tensor projection_local = tp_.leave(projection);
  k.add_bias(projection_local, w.attn_c_proj.bias.value);
  a.after_attention = precision_.activation({rows_local, h});
  k.add(x, projection_local, a.after_attention);

  a.ln2 = precision_.activation({rows_local, h});
  a.ln2_mean = precision_.f32({rows_local});
  a.ln2_rstd = precision_.f32({rows_local});
  k.layernorm_forward(a.after_attention, w.ln_2.weight.value, w.ln_2.bias.value, kLayerNormEps, a.ln2, a.ln2_mean,
                      a.ln2_rstd);
  a.ln2_full = tp_.enter(a.ln2);
  const int64_t f = m.ffn_hidden_size / t;
  a.fc = precision_.activation({rows, f});
  k.matmul(a.ln2_full, false, w.mlp_c_fc.weight.value, false, a.fc);
  if (tp_.sequence_parallel()) a.ln2_full = Tensor();
  k.add_bias(a.fc, w.mlp_c_fc.bias.value);
  a.gelu = precision_.activation({rows, f});
  k.gelu_forward(a.fc, a.gelu);
  Tensor down = precision_.activation({rows, h});
  k.matmul(a.gelu, false, w.mlp_c_proj.weight.value, false, down);
  Tensor down_local = tp_.leave(down);
  k.add_bias(down_local, w.mlp_c_proj.bias.value);
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
  const int64_t h = m.hidden_size, t = tp_.size(), heads = m.num_attention_heads / t;
  const int64_t b = plan_.parallel.micro_batch_size, s = m.seq_length, rows = b * s, rows_local = grad.dim(0);
  const int64_t f = m.ffn_hidden_size / t;
  Kernels& k = kernels_;

  if (!a.complete) {  // full recompute: run the layer again from its input, its collectives too
    // (which TensorParallel times as recompute while this scope is the innermost)
    ScopedTimer timer(timers_, Category::recompute);
    layer_forward(w, a.input, a, /*keep_all=*/true);
  }
  // MLP block: out = after_attention + c_proj(gelu(c_fc(ln_2(after_attention)))).
  k.bias_backward(grad, w.mlp_c_proj.bias.grad);
  const Tensor down_full = tp_.leave_backward(grad);
  Tensor dgelu = precision_.activation({rows, f});
  k.matmul(down_full, false, w.mlp_c_proj.weight.value, true, dgelu);
  k.matmul(a.gelu, true, down_full, false, w.mlp_c_proj.weight.grad, 1.0f, 1.0f);
  Tensor dfc = precision_.activation({rows, f});
  k.gelu_backward(dgelu, a.fc, dfc);
  k.bias_backward(dfc, w.mlp_c_fc.bias.grad);
  const Tensor ln2_full = a.ln2_full.defined() ? a.ln2_full : tp_.enter(a.ln2);
  k.matmul(ln2_full, true, dfc, false, w.mlp_c_fc.weight.grad, 1.0f, 1.0f);
  Tensor dln2_full = precision_.activation({rows, h});
  k.matmul(dfc, false, w.mlp_c_fc.weight.value, true, dln2_full);
  const Tensor dln2 = tp_.enter_backward(dln2_full);
  Tensor dafter = precision_.activation({rows_local, h});
  k.layernorm_backward(dln2, a.after_attention, w.ln_2.weight.value, a.ln2_mean, a.ln2_rstd, dafter, w.ln_2.weight.grad,
                       w.ln_2.bias.grad);
  k.add(dafter, grad, dafter);

  // Attention block: after_attention = input + c_proj(attention(c_attn(ln_1(input)))).
  k.bias_backward(dafter, w.attn_c_proj.bias.grad);
  const Tensor projection_full = tp_.leave_backward(dafter);
  Tensor dattention = precision_.activation({rows, h / t});
  k.matmul(projection_full, false, w.attn_c_proj.weight.value, true, dattention);
  k.matmul(a.attention, true, projection_full, false, w.attn_c_proj.weight.grad, 1.0f, 1.0f);
  const AttentionCore attention_core(k, precision_, plan_.parallel.attention_backend, b, s, heads, h / t);
  if (attention_core.needs_recompute(a)) {  // selective recompute: the attention core only
    ScopedTimer timer(timers_, Category::recompute);
    attention_core.recompute(a);
  }
  const Tensor dqkv = attention_core.backward(dattention, a);
  k.bias_backward(dqkv, w.attn_c_attn.bias.grad);
  const Tensor ln1_full = a.ln1_full.defined() ? a.ln1_full : tp_.enter(a.ln1);
  k.matmul(ln1_full, true, dqkv, false, w.attn_c_attn.weight.grad, 1.0f, 1.0f);
  Tensor dln1_full = precision_.activation({rows, h});
  k.matmul(dqkv, false, w.attn_c_attn.weight.value, true, dln1_full);
  const Tensor dln1 = tp_.enter_backward(dln1_full);
  Tensor dinput = precision_.activation({rows_local, h});
  k.layernorm_backward(dln1, a.input, w.ln_1.weight.value, a.ln1_mean, a.ln1_rstd, dinput, w.ln_1.weight.grad,
                       w.ln_1.bias.grad);
  k.add(dinput, dafter, dinput);
  return dinput;
}

Tensor GptStage::embed(const int32_t* tokens, ChunkActivations& saved) {
  const core::ModelSpec& m = plan_.model;
  const int64_t rows = plan_.parallel.micro_batch_size * m.seq_length, h = m.hidden_size;
  saved.tokens = precision_.tokens(tokens, rows, kernels_);
  Tensor partial = precision_.activation({rows, h});
  kernels_.embedding_forward(saved.tokens, embedding_->wte.value, tp_.rank() * vocab_shard_, partial);
  Tensor x = tp_.leave(partial);  // the vocabulary shards' rows summed (and sliced with SP)
  // Positions of this rank's rows: row r of the microbatch is position r mod s.
  const int64_t first_row = tp_.sequence_parallel() ? tp_.rank() * x.dim(0) : 0;
  std::vector<int32_t> positions(size_t(x.dim(0)));
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = int32_t((first_row + int64_t(i)) % m.seq_length);
  Tensor position_rows = precision_.activation({x.dim(0), h});
  kernels_.embedding_forward(precision_.tokens(positions.data(), x.dim(0), kernels_), embedding_->wpe.value, 0, position_rows);
  kernels_.add(x, position_rows, x);
  return x;
}

Tensor GptStage::embed_backward(const Tensor& grad, const ChunkActivations& saved) {
  const core::ModelSpec& m = plan_.model;
  const Tensor full = tp_.leave_backward(grad);  // every rank needs all rows for its vocabulary shard
  std::vector<int32_t> positions(size_t(full.dim(0)));
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = int32_t(int64_t(i) % m.seq_length);
  kernels_.embedding_backward(full, precision_.tokens(positions.data(), full.dim(0), kernels_), 0, embedding_->wpe.grad);
  kernels_.embedding_backward(full, saved.tokens, tp_.rank() * vocab_shard_, embedding_->wte.grad);
  return Tensor();
}

void GptStage::output_forward(const Tensor& x, const int32_t* targets, ChunkActivations& saved) {
  const core::ModelSpec& m = plan_.model;
  const int64_t rows = plan_.parallel.micro_batch_size * m.seq_length, h = m.hidden_size;
  const OutputParameters& w = *output_;
  saved.lnf_input = x;
  saved.lnf = precision_.activation({x.dim(0), h});
  saved.lnf_mean = precision_.f32({x.dim(0)});
  saved.lnf_rstd = precision_.f32({x.dim(0)});
  kernels_.layernorm_forward(x, w.ln_f.weight.value, w.ln_f.bias.value, kLayerNormEps,
                             saved.lnf, saved.lnf_mean, saved.lnf_rstd);
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
  kernels_.layernorm_backward(dlnf, saved.lnf_input, w.ln_f.weight.value, saved.lnf_mean, saved.lnf_rstd, dx,
                              w.ln_f.weight.grad, w.ln_f.bias.grad);
  return dx;
}

}  // namespace loom::exec
