// The vocabulary-sharded CPU kernels: embedding lookup and vocab-parallel cross-entropy. Each
// rank holds rows [vocab_start, vocab_start + shard rows) of the table (and the matching logit
// columns); tokens outside the shard are another rank's business and contribute nothing here.

#include "executor/kernels/cpu/cpu_math.hpp"
#include "executor/kernels/cpu/eigen_maps.hpp"

namespace loom::exec::cpu {
namespace {

// The token's row within the shard, or -1 when another shard holds it.
int64_t shard_row(int32_t token, int64_t vocab_start, int64_t shard_rows) {
  int64_t row = int64_t(token) - vocab_start;
  return row >= 0 && row < shard_rows ? row : -1;
}

}  // namespace

template <typename T>
void embedding_forward(const int32_t* tokens, const T* table, int64_t vocab_start,
                       int64_t shard_rows, T* out, int64_t count, int64_t cols) {
  for (int64_t i = 0; i < count; ++i) {
    ArrayMap<T> out_row(out + i * cols, cols);
    int64_t row = shard_row(tokens[i], vocab_start, shard_rows);
    if (row < 0) {
      out_row.setZero();
    } else {
      out_row = ConstArrayMap<T>(table + row * cols, cols);
    }
  }
}

template <typename T>
void embedding_backward(const T* dout, const int32_t* tokens, int64_t vocab_start,
                        int64_t shard_rows, T* dtable, int64_t count, int64_t cols) {
  for (int64_t i = 0; i < count; ++i) {
    int64_t row = shard_row(tokens[i], vocab_start, shard_rows);
    if (row >= 0) ArrayMap<T>(dtable + row * cols, cols) += ConstArrayMap<T>(dout + i * cols, cols);
  }
}

template <typename T>
void cross_entropy_partials(const T* logits, const int32_t* targets, int64_t vocab_start,
                            T* row_max, T* sum_exp, T* target_logit, int64_t rows, int64_t vocab) {
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap<T> row(logits + r * vocab, vocab);
    const T max = row.maxCoeff();
    row_max[r] = max;
    sum_exp[r] = (row - max).exp().sum();
    int64_t column = shard_row(targets[r], vocab_start, vocab);
    target_logit[r] = column < 0 ? T(0) : row[column];
  }
}

// The target's column is corrected after the softmax term is written, so dlogits may be the
// logits themselves (the engine overwrites logits with their gradient to save a buffer).
template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* targets, int64_t vocab_start,
                            const T* global_max, const T* global_sum_exp, T scale, T* dlogits,
                            int64_t rows, int64_t vocab) {
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap<T> row(logits + r * vocab, vocab);
    ArrayMap<T> d_row(dlogits + r * vocab, vocab);
    d_row = (row - global_max[r]).exp() * (scale / global_sum_exp[r]);
    int64_t column = shard_row(targets[r], vocab_start, vocab);
    if (column >= 0) d_row[column] -= scale;
  }
}

#define LOOM_INSTANTIATE_VOCABULARY(T)                                                            \
  template void embedding_forward<T>(const int32_t*, const T*, int64_t, int64_t, T*, int64_t,     \
                                     int64_t);                                                    \
  template void embedding_backward<T>(const T*, const int32_t*, int64_t, int64_t, T*, int64_t,    \
                                      int64_t);                                                   \
  template void cross_entropy_partials<T>(const T*, const int32_t*, int64_t, T*, T*, T*, int64_t, \
                                          int64_t);                                               \
  template void cross_entropy_backward<T>(const T*, const int32_t*, int64_t, const T*, const T*,  \
                                          T, T*, int64_t, int64_t);

LOOM_INSTANTIATE_VOCABULARY(float)
LOOM_INSTANTIATE_VOCABULARY(double)

}  // namespace loom::exec::cpu
