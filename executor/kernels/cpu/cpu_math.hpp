#pragma once
// The CPU kernels as templates over the scalar type on raw row-major buffers, instantiated for
// float (what CpuKernels runs) and double (what the tests differentiate numerically). Semantics
// are those of executor/kernels/kernels.hpp: *_backward accumulates into parameter gradients
// (dbias, dgamma, dbeta, dtable) and overwrites activation gradients (dx, dqkv, dlogits).
// Buffers do not alias unless a function says so.

#include <cstdint>

namespace loom::exec::cpu {

// c[m, n] = alpha · op(a) · op(b) + beta · c, op(a) [m, k], op(b) [k, n]. A transposed operand is
// stored transposed (a as [k, m], b as [n, k]). With beta = 0, c's old contents are ignored.
template <typename T>
void matmul(const T* a, bool transpose_a, const T* b, bool transpose_b, T* c, int64_t m, int64_t n,
            int64_t k, T alpha, T beta);

// x[r, :] += bias, x [rows, cols].
template <typename T>
void add_bias(T* x, const T* bias, int64_t rows, int64_t cols);
// dbias[j] += Σ_r dy[r, j].
template <typename T>
void bias_backward(const T* dy, T* dbias, int64_t rows, int64_t cols);
// out = a + b; out may alias a or b.
template <typename T>
void add(const T* a, const T* b, T* out, int64_t count);
// x *= factor.
template <typename T>
void scale(T* x, T factor, int64_t count);
// Σ x², accumulated in double.
template <typename T>
double sum_of_squares(const T* x, int64_t count);

// Over each row of x [rows, cols]: y = (x − mean)·rstd·gamma + beta with rstd = 1/√(var + eps)
// (biased variance); mean and rstd [rows] are saved for the backward pass.
template <typename T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd,
                       int64_t rows, int64_t cols);
template <typename T>
void layernorm_backward(const T* dy, const T* x, const T* gamma, const T* mean, const T* rstd,
                        T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t cols);

// GELU, tanh approximation. y may alias x; dx may alias dy.
template <typename T>
void gelu_forward(const T* x, T* y, int64_t count);
template <typename T>
void gelu_backward(const T* dy, const T* x, T* dx, int64_t count);

// Llama's row-wise and elementwise kernels (llama_ops.cpp).
// RMSNorm over each row of x [rows, cols]: y = x·rstd·gamma, rstd = 1/√(mean(x²) + eps), saved.
template <typename T>
void rmsnorm_forward(const T* x, const T* gamma, T eps, T* y, T* rstd, int64_t rows, int64_t cols);
template <typename T>
void rmsnorm_backward(const T* dy, const T* x, const T* gamma, const T* rstd, T* dx, T* dgamma, int64_t rows,
                      int64_t cols);
// gate_up [rows, 2f] = [gate | up] per row; y [rows, f] = silu(gate)·up.
template <typename T>
void swiglu_forward(const T* gate_up, T* y, int64_t rows, int64_t f);
template <typename T>
void swiglu_backward(const T* dy, const T* gate_up, T* dgate_up, int64_t rows, int64_t f);
// qkv [batch, seq, (heads + 2·kv_heads)·head_dim] = [q heads | k groups | v groups].
struct GroupedShape {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
};
// Rotates q's heads and k's groups in place (rotate-half pairs (i, i + d/2), angle
// p·base^(−2i/d) at sequence position p); `inverse` negates the angles.
template <typename T>
void rotary(T* qkv, GroupedShape shape, double base, bool inverse);
// full [batch, seq, 3·heads·d] from grouped (each head's group's k and v copied), and back
// (a group's k and v gradients summed over its heads; grouped overwritten).
template <typename T>
void expand_query_groups(const T* grouped, T* full, GroupedShape shape);
template <typename T>
void reduce_query_groups(const T* full, T* grouped, GroupedShape shape);

// qkv [batch, seq, 3·heads·head_dim] = [q heads | k heads | v heads]; out [batch, seq,
// heads·head_dim]; probabilities [batch, heads, seq, seq], zero above the diagonal.
struct AttentionShape {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
};
template <typename T>
void attention_forward(const T* qkv, T* out, T* probabilities, AttentionShape shape);
// Writes all of dqkv (the q, k and v parts).
template <typename T>
void attention_backward(const T* dout, const T* qkv, const T* probabilities, T* dqkv,
                        AttentionShape shape);
// The same attention as one tiled kernel that never holds a [seq, seq] matrix: it saves each
// row's log-sum-exp of the scaled, masked scores, log_sum_exp [batch, heads, seq], instead of the
// probabilities; the backward recomputes them tile by tile from qkv, out and log_sum_exp.
template <typename T>
void flash_attention_forward(const T* qkv, T* out, T* log_sum_exp, AttentionShape shape);
// Writes all of dqkv (the q, k and v parts).
template <typename T>
void flash_attention_backward(const T* dout, const T* qkv, const T* out, const T* log_sum_exp,
                              T* dqkv, AttentionShape shape);

// A vocabulary shard holds rows [vocab_start, vocab_start + shard_rows) of the full table; a
// token outside it reads zeros and receives no gradient. out/dout [count, cols].
template <typename T>
void embedding_forward(const int32_t* tokens, const T* table, int64_t vocab_start,
                       int64_t shard_rows, T* out, int64_t count, int64_t cols);
template <typename T>
void embedding_backward(const T* dout, const int32_t* tokens, int64_t vocab_start,
                        int64_t shard_rows, T* dtable, int64_t count, int64_t cols);

// logits [rows, vocab] of a shard starting at vocab_start. Per row: the max, Σ exp(logit − max)
// and the target's logit (0 when the target lies outside the shard).
template <typename T>
void cross_entropy_partials(const T* logits, const int32_t* targets, int64_t vocab_start,
                            T* row_max, T* sum_exp, T* target_logit, int64_t rows, int64_t vocab);
// dlogits = (exp(logit − global_max)/global_sum_exp − onehot(target))·scale. dlogits may alias
// logits (each element is read before it is written).
template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* targets, int64_t vocab_start,
                            const T* global_max, const T* global_sum_exp, T scale, T* dlogits,
                            int64_t rows, int64_t vocab);

// PyTorch's AdamW, `step` counting from 1: p −= lr·wd·p, then the bias-corrected Adam update.
template <typename T>
struct AdamWSettings {
  T lr = 0;
  T beta1 = 0;
  T beta2 = 0;
  T eps = 0;
  T weight_decay = 0;
  int64_t step = 1;
};
template <typename T>
void adamw(T* parameter, const T* gradient, T* m, T* v, int64_t count,
           const AdamWSettings<T>& settings);

}  // namespace loom::exec::cpu
