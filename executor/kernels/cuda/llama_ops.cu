// Llama's kernels. RMSNorm is layer norm's shape (layernorm.cu): one block per row, the row sum a
// block reduction, dgamma a deterministic column sum (column_sums.cuh) in a pass of its own.
// SwiGLU and the query-group copies are elementwise over their output in a grid-stride loop, W
// elements at a time when the row layout and every pointer allow 16-byte vectors. Rotary takes
// one block per token: threadIdx.x walks the rotated pairs, threadIdx.y the heads, so that each
// angle (in double, as the CPU reference forms it) is computed once per thread for many heads.

#include "executor/kernels/cuda/llama_ops.hpp"

#include "executor/kernels/cuda/column_sums.cuh"
#include "executor/kernels/cuda/cuda_check.hpp"
#include "executor/kernels/cuda/device_support.cuh"

#include <algorithm>
#include <initializer_list>

namespace loom::exec::cuda {
namespace {

constexpr int kThreads = 256;

// W-wide vectors when they fit every row: cols a multiple of W and all pointers 16-byte aligned.
template <typename T>
int vector_width(int64_t cols, std::initializer_list<const void*> pointers) {
  if (cols % kVector<T> != 0) return 1;
  for (const void* p : pointers) {
    if (!aligned_to(p, 16)) return 1;
  }
  return kVector<T>;
}

// σ(x) as the CPU reference forms it (expf, not the fast __expf).
__device__ __forceinline__ float sigmoid(float x) {
  return 1.0f / (1.0f + expf(-x));
}

template <int W, typename T>
__global__ void rmsnorm_forward_kernel(const T* x, const T* gamma, float eps, T* y, float* rstd,
                                       int64_t cols) {
  const int64_t row = blockIdx.x;
  const T* x_row = x + row * cols;
  float sum_squares = 0.0f;
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    const Vec<T, W> v = load_vec<W>(x_row + c);
    for (int i = 0; i < W; ++i) sum_squares += to_float(v.v[i]) * to_float(v.v[i]);
  }
  sum_squares = block_reduce(sum_squares, Sum{});
  const float row_rstd = 1.0f / sqrtf(sum_squares / float(cols) + eps);
  if (threadIdx.x == 0) rstd[row] = row_rstd;
  T* y_row = y + row * cols;
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    const Vec<T, W> v = load_vec<W>(x_row + c), g = load_vec<W>(gamma + c);
    Vec<T, W> out;
    for (int i = 0; i < W; ++i)
      out.v[i] = from_float<T>(to_float(v.v[i]) * row_rstd * to_float(g.v[i]));
    store_vec<W>(y_row + c, out);
  }
}

// With x̂ = x·rstd and g = dy·gamma: dx = rstd·(g − x̂·mean(g·x̂)).
template <int W, typename T>
__global__ void rmsnorm_dx_kernel(const T* dy, const T* x, const T* gamma, const float* rstd, T* dx,
                                  int64_t cols) {
  const int64_t row = blockIdx.x;
  const T* dy_row = dy + row * cols;
  const T* x_row = x + row * cols;
  const float row_rstd = rstd[row];
  float sum_g_x_hat = 0.0f;
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    const Vec<T, W> d = load_vec<W>(dy_row + c), v = load_vec<W>(x_row + c),
                    w = load_vec<W>(gamma + c);
    for (int i = 0; i < W; ++i)
      sum_g_x_hat += (to_float(d.v[i]) * to_float(w.v[i])) * (to_float(v.v[i]) * row_rstd);
  }
  sum_g_x_hat = block_reduce(sum_g_x_hat, Sum{});
  const float mean_g_x_hat = sum_g_x_hat / float(cols);
  T* dx_row = dx + row * cols;
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W) {
    const Vec<T, W> d = load_vec<W>(dy_row + c), v = load_vec<W>(x_row + c),
                    w = load_vec<W>(gamma + c);
    Vec<T, W> out;
    for (int i = 0; i < W; ++i) {
      const float g = to_float(d.v[i]) * to_float(w.v[i]);
      const float x_hat = to_float(v.v[i]) * row_rstd;
      out.v[i] = from_float<T>(row_rstd * (g - x_hat * mean_g_x_hat));
    }
    store_vec<W>(dx_row + c, out);
  }
}

// dgamma += Σ_r dy·x̂.
template <typename T>
struct RmsnormGammaTerms {
  const T* dy;
  const T* x;
  const float* rstd;
  int64_t cols;
  __device__ void operator()(int64_t row, int64_t col, float (&terms)[1]) const {
    terms[0] = to_float(dy[row * cols + col]) * (to_float(x[row * cols + col]) * rstd[row]);
  }
};

// y[r, j] = silu(gate[r, j])·up[r, j]; W divides f, so a vector never straddles gate and up.
template <int W, typename T>
__global__ void swiglu_forward_kernel(const T* gate_up, T* y, int64_t count, int64_t f) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x * W;
  for (int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W; first < count;
       first += step) {
    const T* gate = gate_up + (first / f) * 2 * f + first % f;
    const Vec<T, W> g = load_vec<W>(gate), u = load_vec<W>(gate + f);
    Vec<T, W> out;
    for (int i = 0; i < W; ++i) {
      const float x = to_float(g.v[i]);
      out.v[i] = from_float<T>(x * sigmoid(x) * to_float(u.v[i]));
    }
    store_vec<W>(y + first, out);
  }
}

// d up = dy·silu(gate); d gate = dy·up·σ(gate)·(1 + gate·(1 − σ(gate))), associated as the CPU's.
template <int W, typename T>
__global__ void swiglu_backward_kernel(const T* dy, const T* gate_up, T* dgate_up, int64_t count,
                                       int64_t f) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x * W;
  for (int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W; first < count;
       first += step) {
    const int64_t offset = (first / f) * 2 * f + first % f;
    const Vec<T, W> d = load_vec<W>(dy + first), g = load_vec<W>(gate_up + offset),
                    u = load_vec<W>(gate_up + offset + f);
    Vec<T, W> dgate, dup;
    for (int i = 0; i < W; ++i) {
      const float grad = to_float(d.v[i]), x = to_float(g.v[i]), up = to_float(u.v[i]);
      const float s = sigmoid(x);
      dup.v[i] = from_float<T>(grad * x * s);
      dgate.v[i] = from_float<T>(grad * up * s * (1.0f + x * (1.0f - s)));
    }
    store_vec<W>(dgate_up + offset, dgate);
    store_vec<W>(dgate_up + offset + f, dup);
  }
}

// One block per token row of qkv [batch·seq, width]: the pair (x[i], x[i + d/2]) of each of the
// first `rotated_heads` heads turns by p·base^(−2i/d), p the token's sequence position. The
// angle, its cosine and sine are formed in double and rounded to f32, as the CPU reference does.
template <typename T>
__global__ void rotary_kernel(T* qkv, int64_t seq, int64_t width, int64_t rotated_heads,
                              int64_t head_dim, double base, bool inverse) {
  const int64_t row = blockIdx.x, position = row % seq, half = head_dim / 2;
  T* qkv_row = qkv + row * width;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const double angle = double(position) * pow(base, -2.0 * double(i) / double(head_dim));
    double sine = 0, cosine = 0;
    sincos(angle, &sine, &cosine);
    const float c = float(cosine), s = float(inverse ? -sine : sine);
    for (int64_t head = threadIdx.y; head < rotated_heads; head += blockDim.y) {
      T* x = qkv_row + head * head_dim;
      const float first = to_float(x[i]), second = to_float(x[i + half]);
      x[i] = from_float<T>(first * c - second * s);
      x[i + half] = from_float<T>(second * c + first * s);
    }
  }
}

// The heads of a grouped row [q heads | k groups | v groups] and of a full one [q | k | v heads].
struct GroupedLayout {
  int64_t heads;
  int64_t kv_heads;
  int64_t head_dim;
  __device__ int64_t grouped_width() const { return (heads + 2 * kv_heads) * head_dim; }
  __device__ int64_t full_width() const { return 3 * heads * head_dim; }
};

// full[r, c] = grouped[r, source(c)], W elements at a time; W divides head_dim.
template <int W, typename T>
__global__ void expand_query_groups_kernel(const T* grouped, T* full, int64_t count,
                                           GroupedLayout layout) {
  const int64_t d = layout.head_dim, heads_width = layout.heads * d;
  const int64_t per_group = layout.heads / layout.kv_heads;
  const int64_t full_width = layout.full_width(), grouped_width = layout.grouped_width();
  const int64_t step = int64_t(gridDim.x) * blockDim.x * W;
  for (int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W; first < count;
       first += step) {
    const int64_t row = first / full_width, c = first % full_width;
    const int64_t section = c / heads_width, within = c % heads_width;  // q, k or v
    int64_t source = c;
    if (section > 0) {
      const int64_t group = within / d / per_group;
      const int64_t section_start = section == 1 ? layout.heads : layout.heads + layout.kv_heads;
      source = (section_start + group) * d + within % d;
    }
    store_vec<W>(full + first, load_vec<W>(grouped + row * grouped_width + source));
  }
}

// grouped[r, c] = full[r, c] for q; for k and v the sum, in head order, over the group's heads.
template <int W, typename T>
__global__ void reduce_query_groups_kernel(const T* full, T* grouped, int64_t count,
                                           GroupedLayout layout) {
  const int64_t d = layout.head_dim, heads_width = layout.heads * d;
  const int64_t per_group = layout.heads / layout.kv_heads, groups_width = layout.kv_heads * d;
  const int64_t full_width = layout.full_width(), grouped_width = layout.grouped_width();
  const int64_t step = int64_t(gridDim.x) * blockDim.x * W;
  for (int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W; first < count;
       first += step) {
    const int64_t row = first / grouped_width, c = first % grouped_width;
    const T* full_row = full + row * full_width;
    if (c < heads_width) {
      store_vec<W>(grouped + first, load_vec<W>(full_row + c));
      continue;
    }
    const bool is_k = c < heads_width + groups_width;
    const int64_t within = c - heads_width - (is_k ? 0 : groups_width);
    const int64_t group = within / d;
    const T* source =
        full_row + (is_k ? heads_width : 2 * heads_width) + group * per_group * d + within % d;
    float sums[W] = {};
    for (int64_t h = 0; h < per_group; ++h) {
      const Vec<T, W> v = load_vec<W>(source + h * d);
      for (int i = 0; i < W; ++i) sums[i] += to_float(v.v[i]);
    }
    Vec<T, W> out;
    for (int i = 0; i < W; ++i) out.v[i] = from_float<T>(sums[i]);
    store_vec<W>(grouped + first, out);
  }
}

template <typename T>
using GroupCopyKernel = void (*)(const T*, T*, int64_t, GroupedLayout);

// The vector form when W divides head_dim (then every vector lies within one head).
template <typename T>
void launch_group_copy(GroupCopyKernel<T> scalar, GroupCopyKernel<T> vector, const T* from, T* to,
                       int64_t count, const GroupedShape& shape, const DeviceContext& device) {
  const GroupedLayout layout{shape.heads, shape.kv_heads, shape.head_dim};
  const int width = vector_width<T>(shape.head_dim, {from, to});
  const auto kernel = width == 1 ? scalar : vector;
  kernel<<<grid_for(count / width, kThreads, device), kThreads, 0, device.stream>>>(from, to, count,
                                                                                    layout);
}

}  // namespace

void rmsnorm_forward(const Tensor& x, const Tensor& gamma, float eps, Tensor& y, Tensor& rstd,
                     int64_t rows, int64_t cols, const DeviceContext& device) {
  if (rows == 0) return;
  dispatch_compute_type(x.type(), [&]<typename T>(T*) {
    const int width = vector_width<T>(cols, {x.data<T>(), gamma.data<T>(), y.data<T>()});
    const auto kernel =
        width == 1 ? rmsnorm_forward_kernel<1, T> : rmsnorm_forward_kernel<kVector<T>, T>;
    kernel<<<unsigned(rows), threads_for(cols / width), 0, device.stream>>>(
        x.data<T>(), gamma.data<T>(), eps, y.data<T>(), rstd.data<float>(), cols);
  });
  check_launch("rmsnorm_forward", {{"rows", rows}, {"cols", cols}});
}

// The column sum goes first: it reads dy, which the CPU kernel lets dx overwrite.
void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& rstd,
                      Tensor& dx, Tensor& dgamma, int64_t rows, int64_t cols,
                      const DeviceContext& device) {
  if (rows == 0) return;
  dispatch_compute_type(x.type(), [&]<typename T>(T*) {
    launch_column_sums<1>("rmsnorm_backward (dgamma)",
                          RmsnormGammaTerms<T>{dy.data<T>(), x.data<T>(), rstd.data<float>(), cols},
                          rows, cols, ColumnTargets<1>{{dgamma.data<float>()}}, device);
    const int width =
        vector_width<T>(cols, {dy.data<T>(), x.data<T>(), gamma.data<T>(), dx.data<T>()});
    const auto kernel = width == 1 ? rmsnorm_dx_kernel<1, T> : rmsnorm_dx_kernel<kVector<T>, T>;
    kernel<<<unsigned(rows), threads_for(cols / width), 0, device.stream>>>(
        dy.data<T>(), x.data<T>(), gamma.data<T>(), rstd.data<float>(), dx.data<T>(), cols);
  });
  check_launch("rmsnorm_backward (dx)", {{"rows", rows}, {"cols", cols}});
}

void swiglu_forward(const Tensor& gate_up, Tensor& y, int64_t rows, int64_t f,
                    const DeviceContext& device) {
  if (rows == 0 || f == 0) return;
  const int64_t count = rows * f;
  dispatch_compute_type(gate_up.type(), [&]<typename T>(T*) {
    const int width = vector_width<T>(f, {gate_up.data<T>(), y.data<T>()});
    const auto kernel =
        width == 1 ? swiglu_forward_kernel<1, T> : swiglu_forward_kernel<kVector<T>, T>;
    kernel<<<grid_for(count / width, kThreads, device), kThreads, 0, device.stream>>>(
        gate_up.data<T>(), y.data<T>(), count, f);
  });
  check_launch("swiglu_forward", {{"rows", rows}, {"f", f}});
}

void swiglu_backward(const Tensor& dy, const Tensor& gate_up, Tensor& dgate_up, int64_t rows,
                     int64_t f, const DeviceContext& device) {
  if (rows == 0 || f == 0) return;
  const int64_t count = rows * f;
  dispatch_compute_type(gate_up.type(), [&]<typename T>(T*) {
    const int width = vector_width<T>(f, {dy.data<T>(), gate_up.data<T>(), dgate_up.data<T>()});
    const auto kernel =
        width == 1 ? swiglu_backward_kernel<1, T> : swiglu_backward_kernel<kVector<T>, T>;
    kernel<<<grid_for(count / width, kThreads, device), kThreads, 0, device.stream>>>(
        dy.data<T>(), gate_up.data<T>(), dgate_up.data<T>(), count, f);
  });
  check_launch("swiglu_backward", {{"rows", rows}, {"f", f}});
}

void rotary(Tensor& qkv, const GroupedShape& shape, float base, bool inverse,
            const DeviceContext& device) {
  const int64_t tokens = shape.batch * shape.seq, half = shape.head_dim / 2;
  const int64_t rotated_heads = shape.heads + shape.kv_heads;  // q heads, then k groups
  if (tokens == 0 || half == 0) return;
  const int64_t width = (shape.heads + 2 * shape.kv_heads) * shape.head_dim;
  const int pair_lanes = threads_for(half);
  const int head_lanes = int(std::clamp<int64_t>(kThreads / pair_lanes, 1, rotated_heads));
  dispatch_compute_type(qkv.type(), [&]<typename T>(T*) {
    rotary_kernel<T>
        <<<unsigned(tokens), dim3(unsigned(pair_lanes), unsigned(head_lanes)), 0, device.stream>>>(
            qkv.data<T>(), shape.seq, width, rotated_heads, shape.head_dim, double(base), inverse);
  });
  check_launch(inverse ? "rotary_backward" : "rotary_forward", {{"batch", shape.batch},
                                                                {"seq", shape.seq},
                                                                {"heads", shape.heads},
                                                                {"kv_heads", shape.kv_heads},
                                                                {"head_dim", shape.head_dim}});
}

void expand_query_groups(const Tensor& grouped, Tensor& full, const GroupedShape& shape,
                         const DeviceContext& device) {
  const int64_t count = shape.batch * shape.seq * 3 * shape.heads * shape.head_dim;
  if (count == 0) return;
  dispatch_compute_type(grouped.type(), [&]<typename T>(T*) {
    launch_group_copy<T>(expand_query_groups_kernel<1, T>,
                         expand_query_groups_kernel<kVector<T>, T>, grouped.data<T>(),
                         full.data<T>(), count, shape, device);
  });
  check_launch("expand_query_groups", {{"batch", shape.batch},
                                       {"seq", shape.seq},
                                       {"heads", shape.heads},
                                       {"kv_heads", shape.kv_heads},
                                       {"head_dim", shape.head_dim}});
}

void reduce_query_groups(const Tensor& full, Tensor& grouped, const GroupedShape& shape,
                         const DeviceContext& device) {
  const int64_t count =
      shape.batch * shape.seq * (shape.heads + 2 * shape.kv_heads) * shape.head_dim;
  if (count == 0) return;
  dispatch_compute_type(full.type(), [&]<typename T>(T*) {
    launch_group_copy<T>(reduce_query_groups_kernel<1, T>,
                         reduce_query_groups_kernel<kVector<T>, T>, full.data<T>(),
                         grouped.data<T>(), count, shape, device);
  });
  check_launch("reduce_query_groups", {{"batch", shape.batch},
                                       {"seq", shape.seq},
                                       {"heads", shape.heads},
                                       {"kv_heads", shape.kv_heads},
                                       {"head_dim", shape.head_dim}});
}

}  // namespace loom::exec::cuda
