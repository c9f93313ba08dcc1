#pragma once
// The compute kernels of GPT-2 training, behind one interface with a CPU implementation (Eigen;
// the reference) and a CUDA one. All tensors are row-major fp32 here; "rows" is the product of
// every axis but the last. Functions named *_backward ACCUMULATE into parameter gradients
// (dgamma, dbeta, dbias, dweight) and OVERWRITE activation gradients (dx), so that gradient
// accumulation over microbatches needs no extra buffers.

#include "executor/tensor.hpp"

#include <cstdint>
#include <memory>

namespace loom::exec {

class Kernels {
 public:
  virtual ~Kernels() = default;
  virtual Device device() const = 0;

  // c = alpha · op(a) · op(b) + beta · c, with op(x) = xᵀ when transposed. a, b, c are 2-D
  // (leading axes folded into rows).
  virtual void matmul(const Tensor& a, bool transpose_a, const Tensor& b, bool transpose_b, Tensor& c,
                      float alpha = 1.0f, float beta = 0.0f) = 0;
  // x[r, :] += bias; dbias += Σ_r dy[r, :].
  virtual void add_bias(Tensor& x, const Tensor& bias) = 0;
  virtual void bias_backward(const Tensor& dy, Tensor& dbias) = 0;
  // out = a + b (elementwise, same shapes); out may alias a or b.
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // y = (x − mean)/√(var + eps)·gamma + beta over the last axis; mean and rstd [rows] are saved.
  virtual void layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y,
                                 Tensor& mean, Tensor& rstd) = 0;
  virtual void layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                  const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) = 0;
  // GELU with the tanh approximation (GPT-2): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
  virtual void gelu_forward(const Tensor& x, Tensor& y) = 0;
  virtual void gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) = 0;
  // Causal self-attention for `heads` heads of size d = width/(3·heads) over qkv [b, s, 3·heads·d]
  // laid out as [q heads | k heads | v heads] along the last axis; scores scaled by 1/√d, masked
  // so position i sees j ≤ i. out [b, s, heads·d]; probabilities [b, heads, s, s] are saved.
  virtual void attention_forward(const Tensor& qkv, int64_t heads, Tensor& out, Tensor& probabilities) = 0;
  virtual void attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& probabilities, int64_t heads,
                                  Tensor& dqkv) = 0;
  // The same attention as one tiled kernel (FlashAttention-2, for attention-backend flash): it
  // saves log_sum_exp [b, heads, s] (fp32), each row's log Σ exp of its scaled, masked scores,
  // instead of the probabilities, and allocates nothing of size s². The backward recomputes the
  // probabilities tile by tile from qkv, the forward's out and log_sum_exp.
  virtual void flash_attention_forward(const Tensor& qkv, int64_t heads, Tensor& out, Tensor& log_sum_exp) = 0;
  virtual void flash_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out,
                                        const Tensor& log_sum_exp, int64_t heads, Tensor& dqkv) = 0;
  // Token rows of a vocabulary shard: out[i, :] = table[token[i] − vocab_start, :] when the token
  // lies in [vocab_start, vocab_start + table rows), else 0. tokens: i32 [n].
  virtual void embedding_forward(const Tensor& tokens, const Tensor& table, int64_t vocab_start, Tensor& out) = 0;
  // dtable[token[i] − vocab_start, :] += dout[i, :] for tokens in the shard.
  virtual void embedding_backward(const Tensor& dout, const Tensor& tokens, int64_t vocab_start, Tensor& dtable) = 0;
  // Vocab-parallel cross-entropy, local part: for each row of logits [n, V_shard], its max,
  // Σ exp(logit − max) and the target's logit (0 when the target is outside the shard).
  virtual void cross_entropy_partials(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                      Tensor& row_max, Tensor& sum_exp, Tensor& target_logit) = 0;
  // With the global max and Σ exp (after the tensor-parallel reductions): dlogits =
  // (softmax − onehot(target)) · scale, written over the logits' own shape.
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                      const Tensor& global_max, const Tensor& global_sum_exp, float scale,
                                      Tensor& dlogits) = 0;
  // AdamW (decoupled weight decay, bias-corrected moments), `step` counting from 1:
  // m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lr·(m̂/(√v̂ + eps) + wd·p).
  virtual void adamw(Tensor& parameter, const Tensor& gradient, Tensor& m, Tensor& v, float lr, float beta1,
                     float beta2, float eps, float weight_decay, int64_t step) = 0;
  // Σ x² over the tensor (for the global gradient norm), in double.
  virtual double sum_of_squares(const Tensor& x) = 0;
  // x *= factor.
  virtual void scale(Tensor& x, float factor) = 0;
  // Copies between tensors of equal element count (across devices for the CUDA backend).
  virtual void copy(const Tensor& from, Tensor& to) = 0;
};

std::unique_ptr<Kernels> make_cpu_kernels(int threads);

}  // namespace loom::exec
