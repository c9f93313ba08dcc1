#pragma once
// Device-side helpers shared by the backend's kernels: fp32 views of the element types (bf16 is
// widened exactly and rounded to nearest even with the host's own functions, bfloat16.hpp),
// 16-byte vectors, warp and block reductions, and grid sizes.

#include "executor/bfloat16.hpp"
#include "executor/kernels/cuda/device_context.hpp"
#include "executor/tensor.hpp"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace loom::exec::cuda {

__device__ __forceinline__ float to_float(float x) {
  return x;
}
__device__ __forceinline__ float to_float(__nv_bfloat16 x) {
  return bf16_bits_to_float(__bfloat16_as_ushort(x));
}

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __ushort_as_bfloat16(float_to_bf16_bits(x));
}

// W consecutive elements moved as one load or store of W·sizeof(T) bytes (16 at most).
template <typename T, int W>
struct alignas(sizeof(T) * W) Vec {
  T v[W];
};
template <int W, typename T>
__device__ __forceinline__ Vec<T, W> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T, W>*>(p);
}
template <int W, typename T>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, W>& value) {
  *reinterpret_cast<Vec<T, W>*>(p) = value;
}
// Elements per 16-byte vector.
template <typename T>
inline constexpr int kVector = int(16 / sizeof(T));

inline bool aligned_to(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T value, Op op) {
  for (int offset = 16; offset > 0; offset /= 2)
    value = op(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// Reduces one value per thread over the block in a fixed order (lane tree, then warps in turn),
// so results do not vary from run to run, and hands the result to every thread. T is a plain
// struct of 32-bit words (float, double, RowMoments, SoftmaxPartial); op(left, right) combines.
// blockDim.x is a multiple of 32.
template <typename T, typename Op>
__device__ T block_reduce(T value, Op op) {
  static_assert(sizeof(T) % 4 == 0, "block_reduce shuffles 32-bit words");
  constexpr int kWords = int(sizeof(T) / 4);
  __shared__ alignas(16) unsigned char storage[32 * sizeof(T)];
  T* shared = reinterpret_cast<T*>(storage);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int offset = 1; offset < 32; offset *= 2) {
    int words[kWords];
    memcpy(words, &value, sizeof(T));
    for (int w = 0; w < kWords; ++w) words[w] = __shfl_down_sync(0xffffffffu, words[w], offset);
    T other;
    memcpy(&other, words, sizeof(T));
    if (lane + offset < 32) value = op(value, other);
  }
  __syncthreads();  // the storage may still be read from the previous reduction
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    T total = shared[0];
    for (int w = 1; w < warps; ++w) total = op(total, shared[w]);
    shared[0] = total;
  }
  __syncthreads();
  return shared[0];
}

struct Sum {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// Threads per block for a row of `items` work items: enough warps to cover it, within [32, limit].
inline int threads_for(int64_t items, int limit = 256) {
  return int(std::clamp<int64_t>((items + 31) / 32 * 32, 32, limit));
}

// Blocks for a grid-stride loop over `items` with `threads` per block: enough to fill the device
// a few times over, no more (each thread then handles several items).
inline unsigned grid_for(int64_t items, int threads, const DeviceContext& device) {
  const int64_t wanted = (items + threads - 1) / threads;
  return unsigned(std::clamp<int64_t>(wanted, 1, int64_t(device.multiprocessors) * 16));
}

// Calls f with a null pointer of the device element type of `type` (f32 or bf16): the kernels'
// template argument, chosen at run time.
template <typename F>
void dispatch_compute_type(ElementType type, F&& f) {
  if (type == ElementType::bf16) {
    f(static_cast<__nv_bfloat16*>(nullptr));
  } else {
    f(static_cast<float*>(nullptr));
  }
}

}  // namespace loom::exec::cuda
