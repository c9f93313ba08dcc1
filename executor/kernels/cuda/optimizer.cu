#include "executor/kernels/cuda/optimizer.hpp"

#include "executor/kernels/cuda/cuda_check.hpp"
#include "executor/kernels/cuda/device_support.cuh"
#include "executor/kernels/element_math.hpp"

namespace loom::exec::cuda {
namespace {

constexpr int kThreads = 256;

// W = 4 moves the four f32 arrays as float4 and the working copy as 8 bytes; W = 1 serves views
// that are not so aligned, and the tail.
template <int W>
__global__ void adamw_kernel(float* master, const float* gradient, float* m, float* v,
                             __nv_bfloat16* working, int64_t count, AdamWCoefficients c) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x * W;
  for (int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W; first < count;
       first += step) {
    if (first + W <= count) {
      Vec<float, W> p = load_vec<W>(master + first), mv = load_vec<W>(m + first),
                    vv = load_vec<W>(v + first);
      const Vec<float, W> g = load_vec<W>(gradient + first);
      Vec<__nv_bfloat16, W> rounded;
      for (int i = 0; i < W; ++i) {
        adamw_update(p.v[i], g.v[i], mv.v[i], vv.v[i], c);
        rounded.v[i] = from_float<__nv_bfloat16>(p.v[i]);
      }
      store_vec<W>(master + first, p);
      store_vec<W>(m + first, mv);
      store_vec<W>(v + first, vv);
      if (working != nullptr) store_vec<W>(working + first, rounded);
    } else {
      for (int64_t i = first; i < count; ++i) {
        adamw_update(master[i], gradient[i], m[i], v[i], c);
        if (working != nullptr) working[i] = from_float<__nv_bfloat16>(master[i]);
      }
    }
  }
}

struct SumDoubles {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// Each block's Σ (w·)x² in double, into partials[blockIdx.x].
template <int W, typename T>
__global__ void sum_of_squares_kernel(const T* x, const float* weights, int64_t count,
                                      double* partials) {
  double sum = 0;
  const int64_t step = int64_t(gridDim.x) * blockDim.x * W;
  for (int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W; first < count;
       first += step) {
    const int n = int(min(int64_t(W), count - first));
    Vec<T, W> values;
    if (n == W) {
      values = load_vec<W>(x + first);
    } else {
      for (int i = 0; i < n; ++i) values.v[i] = x[first + i];
    }
    for (int i = 0; i < n; ++i) {
      const double value = to_float(values.v[i]);
      sum += weights == nullptr ? value * value : double(weights[first + i]) * value * value;
    }
  }
  sum = block_reduce(sum, SumDoubles{});
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// One block adds the partials, in a fixed order, into partials[count].
__global__ void __launch_bounds__(1024) sum_partials_kernel(double* partials, int count) {
  double sum = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  sum = block_reduce(sum, SumDoubles{});
  if (threadIdx.x == 0) partials[count] = sum;
}

}  // namespace

void adamw(Tensor& master, const Tensor& gradient, Tensor& m, Tensor& v,
           const AdamWSettings& settings, Tensor* working_copy, const DeviceContext& device) {
  const int64_t count = master.numel();
  if (count == 0) return;
  const AdamWCoefficients coefficients = adamw_coefficients(settings);
  __nv_bfloat16* working = working_copy == nullptr ? nullptr : working_copy->data<__nv_bfloat16>();
  const bool vector = aligned_to(master.data<float>(), 16) &&
                      aligned_to(gradient.data<float>(), 16) && aligned_to(m.data<float>(), 16) &&
                      aligned_to(v.data<float>(), 16) &&
                      (working == nullptr || aligned_to(working, 8));
  const int width = vector ? 4 : 1;
  const auto kernel = vector ? adamw_kernel<4> : adamw_kernel<1>;
  kernel<<<grid_for((count + width - 1) / width, kThreads, device), kThreads, 0, device.stream>>>(
      master.data<float>(), gradient.data<float>(), m.data<float>(), v.data<float>(), working,
      count, coefficients);
  check_launch("adamw", {{"elements", count}});
}

double sum_of_squares(const Tensor& x, const Tensor* weights, const DeviceContext& device) {
  const int64_t count = x.numel();
  if (count == 0) return 0.0;
  const float* w = weights == nullptr ? nullptr : weights->data<float>();
  double result = 0;
  dispatch_compute_type(x.type(), [&]<typename T>(T*) {
    const int width = aligned_to(x.data<T>(), 16) ? kVector<T> : 1;
    const unsigned blocks = grid_for((count + width - 1) / width, kThreads, device);
    Tensor partials({int64_t(blocks) + 1}, ElementType::f64, Device::cuda);
    const auto kernel =
        width == 1 ? sum_of_squares_kernel<1, T> : sum_of_squares_kernel<kVector<T>, T>;
    kernel<<<blocks, kThreads, 0, device.stream>>>(x.data<T>(), w, count, partials.data<double>());
    sum_partials_kernel<<<1, 1024, 0, device.stream>>>(partials.data<double>(), int(blocks));
    check_launch("sum_of_squares", {{"elements", count}, {"blocks", blocks}});
    check_runtime(cudaMemcpyAsync(&result, partials.data<double>() + blocks, sizeof result,
                                  cudaMemcpyDeviceToHost, device.stream),
                  "cudaMemcpyAsync (sum_of_squares)");
    check_runtime(cudaStreamSynchronize(device.stream), "cudaStreamSynchronize (sum_of_squares)");
  });
  return result;
}

}  // namespace loom::exec::cuda
