// Elementwise kernels: each thread moves W consecutive elements per step as one 16-byte vector
// when every pointer allows it (views made by Tensor::rows may not), in a grid-stride loop sized
// to the device; the last partial vector is done element by element.

#include "executor/kernels/cuda/elementwise.hpp"

#include "executor/kernels/cuda/column_sums.cuh"
#include "executor/kernels/cuda/cuda_check.hpp"
#include "executor/kernels/cuda/device_support.cuh"
#include "executor/kernels/element_math.hpp"

#include <algorithm>

namespace loom::exec::cuda {
namespace {

constexpr int kThreads = 256;

// y[i] = op(x[i]); y may be x.
template <int W, typename In, typename Out, typename Op>
__global__ void unary_kernel(const In* x, Out* y, int64_t count, Op op) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x * W;
  for (int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W; first < count;
       first += step) {
    if (first + W <= count) {
      const Vec<In, W> in = load_vec<W>(x + first);
      Vec<Out, W> out;
      for (int i = 0; i < W; ++i) out.v[i] = from_float<Out>(op(to_float(in.v[i])));
      store_vec<W>(y + first, out);
    } else {
      for (int64_t i = first; i < count; ++i) y[i] = from_float<Out>(op(to_float(x[i])));
    }
  }
}

// out[i] = op(a[i], b[i]); out may be a or b.
template <int W, typename T, typename Op>
__global__ void binary_kernel(const T* a, const T* b, T* out, int64_t count, Op op) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x * W;
  for (int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W; first < count;
       first += step) {
    if (first + W <= count) {
      const Vec<T, W> va = load_vec<W>(a + first), vb = load_vec<W>(b + first);
      Vec<T, W> result;
      for (int i = 0; i < W; ++i)
        result.v[i] = from_float<T>(op(to_float(va.v[i]), to_float(vb.v[i])));
      store_vec<W>(out + first, result);
    } else {
      for (int64_t i = first; i < count; ++i)
        out[i] = from_float<T>(op(to_float(a[i]), to_float(b[i])));
    }
  }
}

// A thread owns W columns of bias and adds them to every gridDim.y-th row.
template <int W, typename T>
__global__ void add_bias_kernel(T* x, const T* bias, int64_t rows, int64_t cols) {
  const int64_t col = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (col >= cols) return;
  const Vec<T, W> b = load_vec<W>(bias + col);
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    T* row = x + r * cols + col;
    Vec<T, W> v = load_vec<W>(row);
    for (int i = 0; i < W; ++i) v.v[i] = from_float<T>(to_float(v.v[i]) + to_float(b.v[i]));
    store_vec<W>(row, v);
  }
}

struct Identity {
  __device__ float operator()(float x) const { return x; }
};
struct Scale {
  float factor;
  __device__ float operator()(float x) const { return x * factor; }
};
struct GeluForward {
  __device__ float operator()(float x) const { return gelu_tanh(x); }
};
struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct GeluBackward {
  __device__ float operator()(float dy, float x) const { return dy * gelu_tanh_derivative(x); }
};

template <typename T>
struct BiasTerms {
  const T* dy;
  int64_t cols;
  __device__ void operator()(int64_t row, int64_t col, float (&terms)[1]) const {
    terms[0] = to_float(dy[row * cols + col]);
  }
};

template <typename In, typename Out, typename Op>
void launch_unary(const char* kernel, const In* x, Out* y, int64_t count, Op op,
                  const DeviceContext& device) {
  if (count == 0) return;
  constexpr int W = int(16 / std::max(sizeof(In), sizeof(Out)));
  if (aligned_to(x, W * sizeof(In)) && aligned_to(y, W * sizeof(Out))) {
    unary_kernel<W>
        <<<grid_for((count + W - 1) / W, kThreads, device), kThreads, 0, device.stream>>>(
            x, y, count, op);
  } else {
    unary_kernel<1>
        <<<grid_for(count, kThreads, device), kThreads, 0, device.stream>>>(x, y, count, op);
  }
  check_launch(kernel, {{"elements", count}});
}

template <typename T, typename Op>
void launch_binary(const char* kernel, const T* a, const T* b, T* out, int64_t count, Op op,
                   const DeviceContext& device) {
  if (count == 0) return;
  constexpr int W = kVector<T>;
  if (aligned_to(a, 16) && aligned_to(b, 16) && aligned_to(out, 16)) {
    binary_kernel<W>
        <<<grid_for((count + W - 1) / W, kThreads, device), kThreads, 0, device.stream>>>(
            a, b, out, count, op);
  } else {
    binary_kernel<1>
        <<<grid_for(count, kThreads, device), kThreads, 0, device.stream>>>(a, b, out, count, op);
  }
  check_launch(kernel, {{"elements", count}});
}

template <int W, typename T>
void launch_add_bias(T* x, const T* bias, int64_t rows, int64_t cols, const DeviceContext& device) {
  const int64_t vectors = cols / W;
  const int threads = threads_for(vectors);
  const unsigned column_blocks = unsigned((vectors + threads - 1) / threads);
  // Rows per thread: enough blocks to fill the device, each thread reusing its bias vector.
  const int64_t row_blocks = std::clamp<int64_t>(
      int64_t(device.multiprocessors) * 16 / column_blocks, 1, std::min<int64_t>(rows, 65535));
  add_bias_kernel<W><<<dim3(column_blocks, unsigned(row_blocks)), threads, 0, device.stream>>>(
      x, bias, rows, cols);
}

}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& out, const DeviceContext& device) {
  dispatch_compute_type(a.type(), [&]<typename T>(T*) {
    launch_binary("add", a.data<T>(), b.data<T>(), out.data<T>(), a.numel(), Add{}, device);
  });
}

void add_bias(Tensor& x, const Tensor& bias, int64_t rows, int64_t cols,
              const DeviceContext& device) {
  if (rows == 0 || cols == 0) return;
  dispatch_compute_type(x.type(), [&]<typename T>(T*) {
    constexpr int W = kVector<T>;
    if (cols % W == 0 && aligned_to(x.data<T>(), 16) && aligned_to(bias.data<T>(), 16)) {
      launch_add_bias<W>(x.data<T>(), bias.data<T>(), rows, cols, device);
    } else {
      launch_add_bias<1>(x.data<T>(), bias.data<T>(), rows, cols, device);
    }
  });
  check_launch("add_bias", {{"rows", rows}, {"cols", cols}});
}

void bias_backward(const Tensor& dy, Tensor& dbias, int64_t rows, int64_t cols,
                   const DeviceContext& device) {
  dispatch_compute_type(dy.type(), [&]<typename T>(T*) {
    launch_column_sums<1>("bias_backward", BiasTerms<T>{dy.data<T>(), cols}, rows, cols,
                          ColumnTargets<1>{{dbias.data<float>()}}, device);
  });
}

void gelu_forward(const Tensor& x, Tensor& y, const DeviceContext& device) {
  dispatch_compute_type(x.type(), [&]<typename T>(T*) {
    launch_unary("gelu_forward", x.data<T>(), y.data<T>(), x.numel(), GeluForward{}, device);
  });
}

void gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const DeviceContext& device) {
  dispatch_compute_type(x.type(), [&]<typename T>(T*) {
    launch_binary("gelu_backward", dy.data<T>(), x.data<T>(), dx.data<T>(), x.numel(),
                  GeluBackward{}, device);
  });
}

void scale(Tensor& x, float factor, const DeviceContext& device) {
  dispatch_compute_type(x.type(), [&]<typename T>(T*) {
    launch_unary("scale", x.data<T>(), x.data<T>(), x.numel(), Scale{factor}, device);
  });
}

void cast(const Tensor& from, Tensor& to, const DeviceContext& device) {
  if (from.type() == ElementType::f32) {
    launch_unary("cast f32 to bf16", from.data<float>(), to.data<__nv_bfloat16>(), from.numel(),
                 Identity{}, device);
  } else {
    launch_unary("cast bf16 to f32", from.data<__nv_bfloat16>(), to.data<float>(), from.numel(),
                 Identity{}, device);
  }
}

}  // namespace loom::exec::cuda
