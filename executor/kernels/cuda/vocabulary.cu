// One block per token (embedding) or per logit row (cross-entropy), its threads striding over the
// row in 16-byte vectors where the row allows. Cross-entropy reads each logit once: an online
// softmax per thread (element_math.hpp) merged over the block gives the row's max and Σ exp(x −
// max) without materialising probabilities.

#include "executor/kernels/cuda/vocabulary.hpp"

#include "executor/kernels/cuda/cuda_check.hpp"
#include "executor/kernels/cuda/device_support.cuh"
#include "executor/kernels/element_math.hpp"

namespace loom::exec::cuda {
namespace {

// Threads per logit row at most: a 50k-column row is a few vectors per thread. The kernels are
// bounded to it so that the compiler keeps their registers within what 1024 threads may use.
constexpr int kRowThreads = 1024;

// The token's row (or logit column) within the shard, or -1 when another shard holds it.
__device__ __forceinline__ int64_t shard_index(int32_t token, int64_t vocab_start,
                                               int64_t shard_size) {
  const int64_t index = int64_t(token) - vocab_start;
  return index >= 0 && index < shard_size ? index : -1;
}

template <int W, typename T>
__global__ void embedding_forward_kernel(const int32_t* tokens, const T* table, int64_t vocab_start,
                                         int64_t shard_rows, T* out, int64_t cols) {
  const int64_t i = blockIdx.x;
  const int64_t row = shard_index(tokens[i], vocab_start, shard_rows);
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    Vec<T, W> v;
    if (row >= 0) {
      v = load_vec<W>(table + row * cols + c);
    } else {
      for (int j = 0; j < W; ++j) v.v[j] = from_float<T>(0.0f);
    }
    store_vec<W>(out + i * cols + c, v);
  }
}

// Tokens repeat within a batch, so rows of dtable receive from several blocks: atomics.
template <typename T>
__global__ void embedding_backward_kernel(const T* dout, const int32_t* tokens, int64_t vocab_start,
                                          int64_t shard_rows, float* dtable, int64_t cols) {
  const int64_t i = blockIdx.x;
  const int64_t row = shard_index(tokens[i], vocab_start, shard_rows);
  if (row < 0) return;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    atomicAdd(dtable + row * cols + c, to_float(dout[i * cols + c]));
}

struct MergeSoftmax {
  __device__ SoftmaxPartial operator()(SoftmaxPartial a, SoftmaxPartial b) const {
    return softmax_merge(a, b);
  }
};

template <int W, typename T>
__global__ void __launch_bounds__(kRowThreads)
    cross_entropy_partials_kernel(const T* logits, const int32_t* targets, int64_t vocab_start,
                                  float* row_max, float* sum_exp, float* target_logit,
                                  int64_t cols) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * cols;
  SoftmaxPartial partial;
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    const Vec<T, W> v = load_vec<W>(x + c);
    for (int j = 0; j < W; ++j) partial = softmax_add(partial, to_float(v.v[j]));
  }
  partial = block_reduce(partial, MergeSoftmax{});
  if (threadIdx.x != 0) return;
  row_max[row] = partial.max;
  sum_exp[row] = partial.sum;
  const int64_t column = shard_index(targets[row], vocab_start, cols);
  target_logit[row] = column < 0 ? 0.0f : to_float(x[column]);
}

// dlogits = exp(x − max)·(scale/Σ) − scale·[column is the target]; each element is read before it
// is written by the same thread, so dlogits may be the logits.
template <int W, typename T>
__global__ void __launch_bounds__(kRowThreads)
    cross_entropy_backward_kernel(const T* logits, const int32_t* targets, int64_t vocab_start,
                                  const float* global_max, const float* global_sum_exp, float scale,
                                  T* dlogits, int64_t cols) {
  const int64_t row = blockIdx.x;
  const float max = global_max[row];
  const float factor = scale / global_sum_exp[row];
  const int64_t target = shard_index(targets[row], vocab_start, cols);
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    const Vec<T, W> v = load_vec<W>(logits + row * cols + c);
    Vec<T, W> d;
    for (int j = 0; j < W; ++j) {
      float value = expf(to_float(v.v[j]) - max) * factor;
      if (c + j == target) value -= scale;
      d.v[j] = from_float<T>(value);
    }
    store_vec<W>(dlogits + row * cols + c, d);
  }
}

// W-wide vectors when they fit every row: cols a multiple of W and both pointers 16-byte aligned.
template <typename T>
int vector_width(int64_t cols, const void* a, const void* b) {
  return cols % kVector<T> == 0 && aligned_to(a, 16) && aligned_to(b, 16) ? kVector<T> : 1;
}

}  // namespace

void embedding_forward(const Tensor& tokens, const Tensor& table, int64_t vocab_start, Tensor& out,
                       int64_t count, int64_t shard_rows, int64_t cols,
                       const DeviceContext& device) {
  if (count == 0 || cols == 0) return;
  dispatch_compute_type(table.type(), [&]<typename T>(T*) {
    const int width = vector_width<T>(cols, table.data<T>(), out.data<T>());
    const auto kernel =
        width == 1 ? embedding_forward_kernel<1, T> : embedding_forward_kernel<kVector<T>, T>;
    kernel<<<unsigned(count), threads_for(cols / width), 0, device.stream>>>(
        tokens.data<int32_t>(), table.data<T>(), vocab_start, shard_rows, out.data<T>(), cols);
  });
  check_launch("embedding_forward",
               {{"tokens", count}, {"shard rows", shard_rows}, {"cols", cols}});
}

void embedding_backward(const Tensor& dout, const Tensor& tokens, int64_t vocab_start,
                        Tensor& dtable, int64_t count, int64_t shard_rows, int64_t cols,
                        const DeviceContext& device) {
  if (count == 0 || cols == 0) return;
  dispatch_compute_type(dout.type(), [&]<typename T>(T*) {
    embedding_backward_kernel<<<unsigned(count), threads_for(cols), 0, device.stream>>>(
        dout.data<T>(), tokens.data<int32_t>(), vocab_start, shard_rows, dtable.data<float>(),
        cols);
  });
  check_launch("embedding_backward",
               {{"tokens", count}, {"shard rows", shard_rows}, {"cols", cols}});
}

void cross_entropy_partials(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                            Tensor& row_max, Tensor& sum_exp, Tensor& target_logit, int64_t rows,
                            int64_t cols, const DeviceContext& device) {
  if (rows == 0) return;
  dispatch_compute_type(logits.type(), [&]<typename T>(T*) {
    const int width = vector_width<T>(cols, logits.data<T>(), logits.data<T>());
    const auto kernel = width == 1 ? cross_entropy_partials_kernel<1, T>
                                   : cross_entropy_partials_kernel<kVector<T>, T>;
    kernel<<<unsigned(rows), threads_for(cols / width, kRowThreads), 0, device.stream>>>(
        logits.data<T>(), targets.data<int32_t>(), vocab_start, row_max.data<float>(),
        sum_exp.data<float>(), target_logit.data<float>(), cols);
  });
  check_launch("cross_entropy_partials", {{"rows", rows}, {"cols", cols}});
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                            const Tensor& global_max, const Tensor& global_sum_exp, float scale,
                            Tensor& dlogits, int64_t rows, int64_t cols,
                            const DeviceContext& device) {
  if (rows == 0 || cols == 0) return;
  dispatch_compute_type(logits.type(), [&]<typename T>(T*) {
    const int width = vector_width<T>(cols, logits.data<T>(), dlogits.data<T>());
    const auto kernel = width == 1 ? cross_entropy_backward_kernel<1, T>
                                   : cross_entropy_backward_kernel<kVector<T>, T>;
    kernel<<<unsigned(rows), threads_for(cols / width, kRowThreads), 0, device.stream>>>(
        logits.data<T>(), targets.data<int32_t>(), vocab_start, global_max.data<float>(),
        global_sum_exp.data<float>(), scale, dlogits.data<T>(), cols);
  });
  check_launch("cross_entropy_backward", {{"rows", rows}, {"cols", cols}});
}

}  // namespace loom::exec::cuda
