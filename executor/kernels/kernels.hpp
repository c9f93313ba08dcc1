#pragma once
// The compute kernels of GPT training, behind one interface with a CPU implementation (Eigen; the
// reference) and a CUDA one. Tensors are row-major; "rows" is the product of every axis but the
// last. Functions named *_backward ACCUMULATE into parameter gradients (dgamma, dbeta, dbias,
// dtable, and matmul with beta = 1) and OVERWRITE activation gradients (dx), so that gradient
// accumulation over microbatches needs no extra buffers.
//
// Element types (Megatron's mixed precision): activations and working weights are in the
// *compute type* T of a call — f32 everywhere, or bf16 where the backend computes in it
// (computes_in) — while parameter gradients, norm statistics, log-sum-exps and the optimizer's
// master weights and moments are always f32.
//
// The public functions are a non-virtual front: it checks every tensor (defined, on this
// backend's device, of the expected element type and element count) and throws loom::Error naming
// the kernel, the argument and both shapes, so a wrong call is caught the same way on every
// backend; it then calls the backend's run_… function with the dimensions it derived.

#include "executor/tensor.hpp"

#include <cstdint>
#include <memory>

namespace loom::exec {

// qkv [batch, seq, 3·heads·head_dim] laid out as [q heads | k heads | v heads] along the last
// axis; out [batch, seq, heads·head_dim].
struct AttentionShape {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
};

// qkv of grouped-query attention [batch, seq, (heads + 2·kv_heads)·head_dim], laid out as
// [q heads | k groups | v groups]; query head i shares the key and value of group
// i / (heads / kv_heads). With kv_heads = heads it is AttentionShape's qkv.
struct GroupedShape {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
};

// One AdamW step's settings; `step` counts from 1.
struct AdamWSettings {
  float lr = 0;
  float beta1 = 0;
  float beta2 = 0;
  float eps = 0;
  float weight_decay = 0;
  int64_t step = 1;
};

class Kernels {
 public:
  virtual ~Kernels() = default;
  virtual Device device() const = 0;
  // Whether activations and working weights may be of `type` here (f32 always; bf16 on CUDA).
  virtual bool computes_in(ElementType type) const = 0;
  // Returns once every kernel launched so far has finished (host reads, timers). The CPU's
  // kernels finish before they return, so there it does nothing.
  virtual void synchronize() = 0;

  // c = alpha · op(a) · op(b) + beta · c, with op(x) = xᵀ when transposed. a, b of T, c of T or
  // f32 (a weight gradient accumulated into its f32 main gradient); leading axes fold into rows.
  void matmul(const Tensor& a, bool transpose_a, const Tensor& b, bool transpose_b, Tensor& c, float alpha = 1.0f,
              float beta = 0.0f);
  // x[r, :] += bias (both T); dbias (f32) += Σ_r dy[r, :].
  void add_bias(Tensor& x, const Tensor& bias);
  void bias_backward(const Tensor& dy, Tensor& dbias);
  // out = a + b (elementwise, same count and type); out may alias a or b.
  void add(const Tensor& a, const Tensor& b, Tensor& out);
  // y = (x − mean)/√(var + eps)·gamma + beta over the last axis (x, gamma, beta, y of T); mean and
  // rstd [rows] (f32) are saved. The backward writes dx (T) and accumulates dgamma, dbeta (f32).
  void layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y, Tensor& mean,
                         Tensor& rstd);
  void layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                          const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta);
  // GELU with the tanh approximation (GPT-2): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
  void gelu_forward(const Tensor& x, Tensor& y);
  void gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx);
  // RMSNorm (Llama): y = x·rstd·gamma with rstd = 1/√(mean(x²) + eps) over the last axis (x,
  // gamma, y of T); rstd [rows] (f32) is saved. The backward writes dx and accumulates dgamma (f32).
  void rmsnorm_forward(const Tensor& x, const Tensor& gamma, float eps, Tensor& y, Tensor& rstd);
  void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& rstd, Tensor& dx,
                        Tensor& dgamma);
  // SwiGLU over Megatron's fused layout: gate_up [rows, 2f] holds [gate | up] in each row (one
  // GEMM of the fused gate and up projections); y [rows, f] = silu(gate)·up with silu(x) = x·σ(x).
  // The backward writes all of dgate_up.
  void swiglu_forward(const Tensor& gate_up, Tensor& y);
  void swiglu_backward(const Tensor& dy, const Tensor& gate_up, Tensor& dgate_up);
  // Rotary position embedding, in place on the q heads and k groups of a grouped qkv
  // (GroupedShape; v is left alone), Hugging Face Llama's convention ("rotate half"): for the
  // token at sequence position p (axis 1) and i < d/2, the pair (x[i], x[i + d/2]) turns by the
  // angle p·base^(−2i/d). The backward turns a gradient back by the same angles (the rotation is
  // orthogonal, so its transpose is its inverse).
  void rotary_forward(Tensor& qkv, int64_t heads, int64_t kv_heads, float base);
  void rotary_backward(Tensor& dqkv, int64_t heads, int64_t kv_heads, float base);
  // Grouped-query attention through the multi-head kernels: full [batch, seq, 3·heads·d] gets each
  // query head's own copy of its group's k and v; the reverse sums the k and v gradients of a
  // group's heads into the group (overwriting grouped) and copies q's.
  void expand_query_groups(const Tensor& grouped, int64_t heads, int64_t kv_heads, Tensor& full);
  void reduce_query_groups(const Tensor& full, int64_t heads, int64_t kv_heads, Tensor& grouped);
  // Causal self-attention for `heads` heads of size d = width/(3·heads) over qkv (AttentionShape);
  // scores scaled by 1/√d, masked so position i sees j ≤ i. probabilities [b, heads, s, s] (T)
  // are saved. The backward writes all of dqkv.
  void attention_forward(const Tensor& qkv, int64_t heads, Tensor& out, Tensor& probabilities);
  void attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& probabilities, int64_t heads,
                          Tensor& dqkv);
  // The same attention as one tiled kernel (FlashAttention-2, for attention-backend flash): it
  // saves log_sum_exp [b, heads, s] (f32), each row's log Σ exp of its scaled, masked scores,
  // instead of the probabilities, and allocates nothing of size s². The backward recomputes the
  // probabilities tile by tile from qkv, the forward's out and log_sum_exp.
  void flash_attention_forward(const Tensor& qkv, int64_t heads, Tensor& out, Tensor& log_sum_exp);
  void flash_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out, const Tensor& log_sum_exp,
                                int64_t heads, Tensor& dqkv);
  // Token rows of a vocabulary shard: out[i, :] = table[token[i] − vocab_start, :] when the token
  // lies in [vocab_start, vocab_start + table rows), else 0. tokens: i32 [n]; table, out of T.
  void embedding_forward(const Tensor& tokens, const Tensor& table, int64_t vocab_start, Tensor& out);
  // dtable (f32)[token[i] − vocab_start, :] += dout (T)[i, :] for tokens in the shard.
  void embedding_backward(const Tensor& dout, const Tensor& tokens, int64_t vocab_start, Tensor& dtable);
  // Vocab-parallel cross-entropy, local part: for each row of logits [n, V_shard] (T), its max,
  // Σ exp(logit − max) and the target's logit (0 when the target is outside the shard), all f32.
  void cross_entropy_partials(const Tensor& logits, const Tensor& targets, int64_t vocab_start, Tensor& row_max,
                              Tensor& sum_exp, Tensor& target_logit);
  // With the global max and Σ exp (f32, after the tensor-parallel reductions): dlogits (T) =
  // (softmax − onehot(target)) · scale, written over the logits' own shape.
  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                              const Tensor& global_max, const Tensor& global_sum_exp, float scale, Tensor& dlogits);
  // AdamW (decoupled weight decay, bias-corrected moments) on f32 master weights, gradient and
  // moments: m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lr·(m̂/(√v̂ + eps) + wd·p). When
  // working_copy is given (bf16, same count), the updated weights are also written there, rounded,
  // in the same pass (Megatron's bf16 parameters beside fp32 masters).
  void adamw(Tensor& master, const Tensor& gradient, Tensor& m, Tensor& v, const AdamWSettings& settings,
             Tensor* working_copy = nullptr);
  // Σ x² over the tensor (T), in double; with weights (f32, same count), Σ w·x² (a gradient norm
  // that counts each shared parameter once).
  double sum_of_squares(const Tensor& x, const Tensor* weights = nullptr);
  // x *= factor (T).
  void scale(Tensor& x, float factor);
  // Copies between tensors of equal element count and type, on any devices (the CUDA backend
  // copies host↔device); `to` may be on the host for any backend.
  void copy(const Tensor& from, Tensor& to);
  // Converts between f32 and bf16 (round to nearest even) on this backend's device; equal types copy.
  void cast(const Tensor& from, Tensor& to);

 protected:
  // The backends' kernels, called with checked tensors only.
  virtual void run_matmul(const Tensor& a, bool transpose_a, const Tensor& b, bool transpose_b, Tensor& c, int64_t m,
                          int64_t n, int64_t k, float alpha, float beta) = 0;
  virtual void run_add_bias(Tensor& x, const Tensor& bias, int64_t rows, int64_t cols) = 0;
  virtual void run_bias_backward(const Tensor& dy, Tensor& dbias, int64_t rows, int64_t cols) = 0;
  virtual void run_add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  virtual void run_layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y,
                                     Tensor& mean, Tensor& rstd, int64_t rows, int64_t cols) = 0;
  virtual void run_layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                      const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, int64_t rows,
                                      int64_t cols) = 0;
  virtual void run_gelu_forward(const Tensor& x, Tensor& y) = 0;
  virtual void run_gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) = 0;
  virtual void run_rmsnorm_forward(const Tensor& x, const Tensor& gamma, float eps, Tensor& y, Tensor& rstd,
                                   int64_t rows, int64_t cols) = 0;
  virtual void run_rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& rstd,
                                    Tensor& dx, Tensor& dgamma, int64_t rows, int64_t cols) = 0;
  // gate_up [rows, 2·f], y [rows, f].
  virtual void run_swiglu_forward(const Tensor& gate_up, Tensor& y, int64_t rows, int64_t f) = 0;
  virtual void run_swiglu_backward(const Tensor& dy, const Tensor& gate_up, Tensor& dgate_up, int64_t rows,
                                   int64_t f) = 0;
  // `inverse` turns by the negated angles (the backward).
  virtual void run_rotary(Tensor& qkv, const GroupedShape& shape, float base, bool inverse) = 0;
  virtual void run_expand_query_groups(const Tensor& grouped, Tensor& full, const GroupedShape& shape) = 0;
  virtual void run_reduce_query_groups(const Tensor& full, Tensor& grouped, const GroupedShape& shape) = 0;
  virtual void run_attention_forward(const Tensor& qkv, Tensor& out, Tensor& probabilities,
                                     const AttentionShape& shape) = 0;
  virtual void run_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& probabilities,
                                      Tensor& dqkv, const AttentionShape& shape) = 0;
  virtual void run_flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& log_sum_exp,
                                           const AttentionShape& shape) = 0;
  virtual void run_flash_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out,
                                            const Tensor& log_sum_exp, Tensor& dqkv, const AttentionShape& shape) = 0;
  // table/dtable have `shard_rows` rows of `cols`; tokens has `count` entries.
  virtual void run_embedding_forward(const Tensor& tokens, const Tensor& table, int64_t vocab_start, Tensor& out,
                                     int64_t count, int64_t shard_rows, int64_t cols) = 0;
  virtual void run_embedding_backward(const Tensor& dout, const Tensor& tokens, int64_t vocab_start, Tensor& dtable,
                                      int64_t count, int64_t shard_rows, int64_t cols) = 0;
  virtual void run_cross_entropy_partials(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                          Tensor& row_max, Tensor& sum_exp, Tensor& target_logit, int64_t rows,
                                          int64_t cols) = 0;
  virtual void run_cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                          const Tensor& global_max, const Tensor& global_sum_exp, float scale,
                                          Tensor& dlogits, int64_t rows, int64_t cols) = 0;
  virtual void run_adamw(Tensor& master, const Tensor& gradient, Tensor& m, Tensor& v, const AdamWSettings& settings,
                         Tensor* working_copy) = 0;
  virtual double run_sum_of_squares(const Tensor& x, const Tensor* weights) = 0;
  virtual void run_scale(Tensor& x, float factor) = 0;
  virtual void run_copy(const Tensor& from, Tensor& to) = 0;
  virtual void run_cast(const Tensor& from, Tensor& to) = 0;
};

std::unique_ptr<Kernels> make_cpu_kernels(int threads);

}  // namespace loom::exec
