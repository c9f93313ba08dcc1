// Layer norm, one block per row: the forward's statistics are Welford partials per thread merged
// over the block (element_math.hpp), the backward's two row sums a plain block reduction. The
// second pass over a row re-reads it from L1/L2. dgamma and dbeta are column sums over all rows
// (column_sums.cuh), deterministic, in a pass of their own: it re-reads dy and x, which costs
// less than a per-block [cols] accumulator would in shared memory at GPT widths.

#include "executor/kernels/cuda/layernorm.hpp"

#include "executor/kernels/cuda/column_sums.cuh"
#include "executor/kernels/cuda/cuda_check.hpp"
#include "executor/kernels/cuda/device_support.cuh"
#include "executor/kernels/element_math.hpp"

namespace loom::exec::cuda {
namespace {

struct MergeMoments {
  __device__ RowMoments operator()(RowMoments a, RowMoments b) const { return moments_merge(a, b); }
};
struct AddPairs {
  __device__ float2 operator()(float2 a, float2 b) const {
    return make_float2(a.x + b.x, a.y + b.y);
  }
};

// W elements per load; W > 1 only when cols is a multiple of W and every pointer is 16-byte
// aligned, so each row's vectors are too.
template <int W, typename T>
__global__ void layernorm_forward_kernel(const T* x, const T* gamma, const T* beta, float eps, T* y,
                                         float* mean, float* rstd, int64_t cols) {
  const int64_t row = blockIdx.x;
  const T* x_row = x + row * cols;
  RowMoments moments;
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    const Vec<T, W> v = load_vec<W>(x_row + c);
    for (int i = 0; i < W; ++i) moments = moments_add(moments, to_float(v.v[i]));
  }
  moments = block_reduce(moments, MergeMoments{});
  const float row_mean = moments.mean;
  const float row_rstd = moments_rstd(moments, eps);
  if (threadIdx.x == 0) {
    mean[row] = row_mean;
    rstd[row] = row_rstd;
  }
  T* y_row = y + row * cols;
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    const Vec<T, W> v = load_vec<W>(x_row + c), g = load_vec<W>(gamma + c),
                    b = load_vec<W>(beta + c);
    Vec<T, W> out;
    for (int i = 0; i < W; ++i) {
      out.v[i] = from_float<T>((to_float(v.v[i]) - row_mean) * row_rstd * to_float(g.v[i]) +
                               to_float(b.v[i]));
    }
    store_vec<W>(y_row + c, out);
  }
}

// With x̂ = (x − mean)·rstd and g = dy·gamma: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)).
template <int W, typename T>
__global__ void layernorm_dx_kernel(const T* dy, const T* x, const T* gamma, const float* mean,
                                    const float* rstd, T* dx, int64_t cols) {
  const int64_t row = blockIdx.x;
  const T* dy_row = dy + row * cols;
  const T* x_row = x + row * cols;
  const float row_mean = mean[row], row_rstd = rstd[row];
  float2 sums = make_float2(0.0f, 0.0f);  // Σ g, Σ g·x̂
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    const Vec<T, W> d = load_vec<W>(dy_row + c), v = load_vec<W>(x_row + c),
                    w = load_vec<W>(gamma + c);
    for (int i = 0; i < W; ++i) {
      const float g = to_float(d.v[i]) * to_float(w.v[i]);
      sums.x += g;
      sums.y += g * ((to_float(v.v[i]) - row_mean) * row_rstd);
    }
  }
  sums = block_reduce(sums, AddPairs{});
  const float mean_g = sums.x / float(cols), mean_g_x_hat = sums.y / float(cols);
  T* dx_row = dx + row * cols;
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    const Vec<T, W> d = load_vec<W>(dy_row + c), v = load_vec<W>(x_row + c),
                    w = load_vec<W>(gamma + c);
    Vec<T, W> out;
    for (int i = 0; i < W; ++i) {
      const float g = to_float(d.v[i]) * to_float(w.v[i]);
      const float x_hat = (to_float(v.v[i]) - row_mean) * row_rstd;
      out.v[i] = from_float<T>(row_rstd * (g - mean_g - x_hat * mean_g_x_hat));
    }
    store_vec<W>(dx_row + c, out);
  }
}

// dgamma += Σ_r dy·x̂, dbeta += Σ_r dy.
template <typename T>
struct NormParameterTerms {
  const T* dy;
  const T* x;
  const float* mean;
  const float* rstd;
  int64_t cols;
  __device__ void operator()(int64_t row, int64_t col, float (&terms)[2]) const {
    const float d = to_float(dy[row * cols + col]);
    terms[0] = d * ((to_float(x[row * cols + col]) - mean[row]) * rstd[row]);
    terms[1] = d;
  }
};

// W-wide vectors when they fit every row: cols a multiple of W and all pointers 16-byte aligned.
template <typename T>
int vector_width(int64_t cols, std::initializer_list<const void*> pointers) {
  if (cols % kVector<T> != 0) return 1;
  for (const void* p : pointers) {
    if (!aligned_to(p, 16)) return 1;
  }
  return kVector<T>;
}

}  // namespace

void layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                       Tensor& y, Tensor& mean, Tensor& rstd, int64_t rows, int64_t cols,
                       const DeviceContext& device) {
  if (rows == 0) return;
  dispatch_compute_type(x.type(), [&]<typename T>(T*) {
    const int width =
        vector_width<T>(cols, {x.data<T>(), gamma.data<T>(), beta.data<T>(), y.data<T>()});
    const auto kernel =
        width == 1 ? layernorm_forward_kernel<1, T> : layernorm_forward_kernel<kVector<T>, T>;
    kernel<<<unsigned(rows), threads_for(cols / width), 0, device.stream>>>(
        x.data<T>(), gamma.data<T>(), beta.data<T>(), eps, y.data<T>(), mean.data<float>(),
        rstd.data<float>(), cols);
  });
  check_launch("layernorm_forward", {{"rows", rows}, {"cols", cols}});
}

// The column sums go first: they read dy, which the CPU kernel lets dx overwrite.
void layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                        const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, int64_t rows,
                        int64_t cols, const DeviceContext& device) {
  if (rows == 0) return;
  dispatch_compute_type(x.type(), [&]<typename T>(T*) {
    launch_column_sums<2>("layernorm_backward (dgamma, dbeta)",
                          NormParameterTerms<T>{dy.data<T>(), x.data<T>(), mean.data<float>(),
                                                rstd.data<float>(), cols},
                          rows, cols, ColumnTargets<2>{{dgamma.data<float>(), dbeta.data<float>()}},
                          device);
    const int width =
        vector_width<T>(cols, {dy.data<T>(), x.data<T>(), gamma.data<T>(), dx.data<T>()});
    const auto kernel = width == 1 ? layernorm_dx_kernel<1, T> : layernorm_dx_kernel<kVector<T>, T>;
    kernel<<<unsigned(rows), threads_for(cols / width), 0, device.stream>>>(
        dy.data<T>(), x.data<T>(), gamma.data<T>(), mean.data<float>(), rstd.data<float>(),
        dx.data<T>(), cols);
  });
  check_launch("layernorm_backward (dx)", {{"rows", rows}, {"cols", cols}});
}

}  // namespace loom::exec::cuda
