#pragma once
// Column sums of row-major [rows, cols] terms added into f32 vectors — the parameter gradients
// of a bias (Σ_r dy) and of a layer norm (Σ_r dy·x̂ and Σ_r dy). Deterministic, without atomics:
// blocks sum column tiles over chunks of rows into partials, then one thread per column adds its
// partials in chunk order to the destination (which accumulates, as *_backward does).

#include "executor/kernels/cuda/cuda_check.hpp"
#include "executor/kernels/cuda/device_support.cuh"
#include "executor/tensor.hpp"

#include <algorithm>
#include <array>

namespace loom::exec::cuda {

template <int N>
struct ColumnTargets {
  float* data[N];
};

// Block (32, 8): a warp reads 32 consecutive columns of a row; 8 warps take every 8th row.
constexpr int kColumnTile = 32;
constexpr int kRowLanes = 8;

// Terms: __device__ void operator()(int64_t row, int64_t col, float (&terms)[N]) const.
template <int N, typename Terms>
__global__ void column_partials_kernel(Terms terms, int64_t rows, int64_t cols,
                                       int64_t rows_per_chunk, float* partials) {
  const int64_t col = int64_t(blockIdx.x) * kColumnTile + threadIdx.x;
  const int64_t begin = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t end = min(rows, begin + rows_per_chunk);
  float sums[N] = {};
  if (col < cols) {
    for (int64_t r = begin + threadIdx.y; r < end; r += kRowLanes) {
      float t[N];
      terms(r, col, t);
      for (int j = 0; j < N; ++j) sums[j] += t[j];
    }
  }
  __shared__ float shared[N][kRowLanes][kColumnTile + 1];
  for (int j = 0; j < N; ++j) shared[j][threadIdx.y][threadIdx.x] = sums[j];
  __syncthreads();
  if (threadIdx.y != 0 || col >= cols) return;
  for (int j = 0; j < N; ++j) {
    float total = 0;
    for (int y = 0; y < kRowLanes; ++y) total += shared[j][y][threadIdx.x];
    partials[(int64_t(j) * gridDim.y + blockIdx.y) * cols + col] = total;
  }
}

template <int N>
__global__ void column_totals_kernel(const float* partials, int64_t chunks, int64_t cols,
                                     ColumnTargets<N> targets) {
  const int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  for (int j = 0; j < N; ++j) {
    float total = 0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      total += partials[(j * chunks + chunk) * cols + col];
    targets.data[j][col] += total;
  }
}

// targets[j][c] += Σ_r terms(r, c)[j]. The partials live in a pool tensor released on return:
// the kernels that use it are already queued on the stream, ahead of any later reuse.
template <int N, typename Terms>
void launch_column_sums(const char* kernel, Terms terms, int64_t rows, int64_t cols,
                        ColumnTargets<N> targets, const DeviceContext& device) {
  if (rows == 0 || cols == 0) return;
  const int64_t tiles = (cols + kColumnTile - 1) / kColumnTile;
  // Enough chunks for a few blocks per multiprocessor, each of at least a row per row lane.
  const int64_t wanted = (int64_t(device.multiprocessors) * 4 + tiles - 1) / tiles;
  const int64_t max_chunks = std::min<int64_t>((rows + kRowLanes - 1) / kRowLanes, 65535);
  const int64_t chunks_wanted = std::clamp<int64_t>(wanted, 1, max_chunks);
  const int64_t rows_per_chunk = (rows + chunks_wanted - 1) / chunks_wanted;
  const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  Tensor partials({N, chunks, cols}, ElementType::f32, Device::cuda);
  column_partials_kernel<N>
      <<<dim3(unsigned(tiles), unsigned(chunks)), dim3(kColumnTile, kRowLanes), 0, device.stream>>>(
          terms, rows, cols, rows_per_chunk, partials.data<float>());
  column_totals_kernel<N><<<unsigned((cols + 255) / 256), 256, 0, device.stream>>>(
      partials.data<float>(), chunks, cols, targets);
  check_launch(kernel, {{"rows", rows}, {"cols", cols}, {"chunks", chunks}});
}

}  // namespace loom::exec::cuda
