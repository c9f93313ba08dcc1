// FlashAttention-2's backward pass, causal. With P = exp(scale·Q·Kᵀ − lse) recomputed tile by
// tile: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = scale·P ⊙ (dP − D) with D = rowsum(dO ⊙ O), dK = dSᵀ·Q,
// dQ = dS·K. A block owns 64 keys of one (sequence, head), 16 per warp, and walks the queries
// from its first key to the end in steps of 32: each warp keeps its keys' dK and dV in registers
// for the whole walk and writes them once; dQ gets a contribution from every key block, so it is
// added atomically into an f32 accumulator, converted into dqkv at the end. The warps compute the
// transposed products (Sᵀ, Pᵀ, dPᵀ, dSᵀ: rows are keys) so that dK and dV come out per warp.

#include "executor/kernels/cuda/flash_attention.hpp"

#include "executor/kernels/cuda/cuda_check.hpp"
#include "executor/kernels/cuda/flash_tiles.cuh"
#include "executor/kernels/element_math.hpp"

#include <cmath>

namespace loom::exec::cuda {
namespace {

using flash::BLayout;
using flash::fragment_col;
using flash::fragment_row;
using flash::kThreads;
using flash::kWarps;
using flash::Operand;

constexpr int kKeys = 16 * kWarps;  // per block
constexpr int kQueries = 32;        // per step

// Shared memory, in elements of T: the block's k and v, one step's q and dO, each warp's Pᵀ (then
// its dSᵀ), the block's dS; then, in f32, the step's log-sum-exps and D.
template <typename T, int kD>
struct BackwardLayout {
  static constexpr int kStrideD = kD + flash::kPad<T>;
  static constexpr int kStrideKeys = kKeys + flash::kPad<T>;
  static constexpr int kStrideQueries = kQueries + flash::kPad<T>;
  static constexpr int kK = kKeys * kStrideD;
  static constexpr int kV = kKeys * kStrideD;
  static constexpr int kQ = kQueries * kStrideD;
  static constexpr int kDO = kQueries * kStrideD;
  static constexpr int kPT = kWarps * 16 * kStrideQueries;
  static constexpr int kDS = kQueries * kStrideKeys;  // [query][key]
  static constexpr int kStatisticsOffset =
      int(sizeof(T)) * (kK + kV + kQ + kDO + kPT + kDS);  // bytes, 16-aligned
  static constexpr int kBytes = kStatisticsOffset + 2 * kQueries * int(sizeof(float));
};

// D = rowsum(dO ⊙ O) per (sequence, head, position), at the index of its log-sum-exp: a warp per
// row.
template <typename T>
__global__ void flash_delta_kernel(const T* dout, const T* out, float* delta,
                                   AttentionShape shape) {
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= shape.batch * shape.heads * shape.seq) return;
  const int64_t pair = row / shape.seq, position = row % shape.seq;
  const int64_t offset =
      ((pair / shape.heads) * shape.seq + position) * shape.heads * shape.head_dim +
      (pair % shape.heads) * shape.head_dim;
  float sum = 0;
  for (int64_t c = threadIdx.x % 32; c < shape.head_dim; c += 32)
    sum += to_float(dout[offset + c]) * to_float(out[offset + c]);
  sum = warp_reduce(sum, Sum{});
  if (threadIdx.x % 32 == 0) delta[row] = sum;
}

// Grid: (batch·heads, key tiles), the key tiles with the most queries first.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    flash_backward_kernel(const T* dout, const T* qkv, const float* log_sum_exp, const float* delta,
                          float* dq_accumulator, T* dqkv, AttentionShape shape, float scale,
                          bool vector) {
  using L = BackwardLayout<T, kD>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* k = reinterpret_cast<T*>(shared_bytes);
  T* v = k + L::kK;
  T* q = v + L::kV;
  T* d_o = q + L::kQ;
  const int warp = threadIdx.x / 32;
  T* pt = d_o + L::kDO + warp * 16 * L::kStrideQueries;
  T* ds = d_o + L::kDO + L::kPT;
  float* step_lse = reinterpret_cast<float*>(shared_bytes + L::kStatisticsOffset);
  float* step_delta = step_lse + kQueries;

  const int64_t pair = blockIdx.x, b = pair / shape.heads, h = pair % shape.heads;
  const int64_t seq = shape.seq, width = shape.heads * shape.head_dim;
  const int d = int(shape.head_dim);
  // The head's q at position 0; its k and v lie width and 2·width further on.
  const T* head = qkv + b * seq * 3 * width + h * d;
  const T* head_dout = dout + b * seq * width + h * d;
  const int64_t k0 = int64_t(blockIdx.y) * kKeys;
  const int valid_keys = int(min(int64_t(kKeys), seq - k0));
  flash::load_tile<kD>(k, L::kStrideD, head + k0 * 3 * width + width, 3 * width, valid_keys, d,
                       kKeys, vector);
  flash::load_tile<kD>(v, L::kStrideD, head + k0 * 3 * width + 2 * width, 3 * width, valid_keys, d,
                       kKeys, vector);
  // dQ: the warps split the step's 32 queries in two and head_dim in two.
  const int dq_row0 = (warp % 2) * 16, dq_col0 = (warp / 2) * (kD / 2);

  float dk[kD / 8][4], dv[kD / 8][4];
  flash::zero(dk);
  flash::zero(dv);
  const int64_t first_key = k0 + warp * 16;
  for (int64_t q0 = k0; q0 < seq; q0 += kQueries) {
    const int valid_queries = int(min(int64_t(kQueries), seq - q0));
    __syncthreads();  // every warp is done with the previous step's tiles
    flash::load_tile<kD>(q, L::kStrideD, head + q0 * 3 * width, 3 * width, valid_queries, d,
                         kQueries, vector);
    flash::load_tile<kD>(d_o, L::kStrideD, head_dout + q0 * width, width, valid_queries, d,
                         kQueries, vector);
    if (threadIdx.x < kQueries) {
      const bool inside = int(threadIdx.x) < valid_queries;
      step_lse[threadIdx.x] = inside ? log_sum_exp[pair * seq + q0 + threadIdx.x] : 0.0f;
      step_delta[threadIdx.x] = inside ? delta[pair * seq + q0 + threadIdx.x] : 0.0f;
    }
    __syncthreads();

    // Pᵀ (16 keys × 32 queries): key j sees query i when j ≤ i.
    float p[kQueries / 8][4];
    flash::zero(p);
    flash::warp_product<BLayout::kColumns, kQueries / 8, kD>(
        p, Operand<T>{k + warp * 16 * L::kStrideD, L::kStrideD}, Operand<T>{q, L::kStrideD});
#pragma unroll
    for (int n = 0; n < kQueries / 8; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int query = 8 * n + fragment_col(i);
        const bool visible = first_key + fragment_row(i) <= q0 + query && query < valid_queries;
        p[n][i] = visible ? expf(p[n][i] * scale - step_lse[query]) : 0.0f;
      }
    }
    flash::store_fragments(p, pt, L::kStrideQueries, 1);
    __syncwarp();
    flash::warp_product<BLayout::kRows, kD / 8, kQueries>(dv, Operand<T>{pt, L::kStrideQueries},
                                                          Operand<T>{d_o, L::kStrideD});

    // dSᵀ = scale·Pᵀ ⊙ (dPᵀ − D), dPᵀ = V·dOᵀ.
    float dst[kQueries / 8][4];
    flash::zero(dst);
    flash::warp_product<BLayout::kColumns, kQueries / 8, kD>(
        dst, Operand<T>{v + warp * 16 * L::kStrideD, L::kStrideD}, Operand<T>{d_o, L::kStrideD});
#pragma unroll
    for (int n = 0; n < kQueries / 8; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i)
        dst[n][i] = scale * p[n][i] * (dst[n][i] - step_delta[8 * n + fragment_col(i)]);
    }
    __syncwarp();  // every lane has read Pᵀ
    flash::store_fragments(dst, pt, L::kStrideQueries, 1);
    flash::store_fragments(dst, ds + warp * 16, 1, L::kStrideKeys);
    __syncwarp();
    flash::warp_product<BLayout::kRows, kD / 8, kQueries>(dk, Operand<T>{pt, L::kStrideQueries},
                                                          Operand<T>{q, L::kStrideD});
    __syncthreads();  // dS holds every warp's keys

    float dq[kD / 16][4];
    flash::zero(dq);
    flash::warp_product<BLayout::kRows, kD / 16, kKeys>(
        dq, Operand<T>{ds + dq_row0 * L::kStrideKeys, L::kStrideKeys},
        Operand<T>{k + dq_col0, L::kStrideD});
#pragma unroll
    for (int n = 0; n < kD / 16; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int query = dq_row0 + fragment_row(i), col = dq_col0 + 8 * n + fragment_col(i);
        if (query < valid_queries && col < d)
          atomicAdd(dq_accumulator + (b * seq + q0 + query) * width + h * d + col, dq[n][i]);
      }
    }
  }

#pragma unroll
  for (int n = 0; n < kD / 8; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t key = first_key + fragment_row(i);
      const int col = 8 * n + fragment_col(i);
      if (key >= seq || col >= d) continue;
      T* row = dqkv + (b * seq + key) * 3 * width + h * d + col;
      row[width] = from_float<T>(dk[n][i]);
      row[2 * width] = from_float<T>(dv[n][i]);
    }
  }
}

// dqkv's q part from the f32 accumulator [batch·seq, width]: a block per position.
template <typename T>
__global__ void flash_dq_kernel(const float* dq_accumulator, T* dqkv, int64_t width) {
  const int64_t row = blockIdx.x;
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
    dqkv[row * 3 * width + c] = from_float<T>(dq_accumulator[row * width + c]);
  }
}

template <typename T, int kD>
void launch_backward(const Tensor& dout, const Tensor& qkv, const Tensor& delta,
                     Tensor& dq_accumulator, const Tensor& log_sum_exp, Tensor& dqkv,
                     const AttentionShape& shape, const DeviceContext& device) {
  const auto kernel = flash_backward_kernel<T, kD>;
  const int bytes = BackwardLayout<T, kD>::kBytes;
  check_runtime(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
                "cudaFuncSetAttribute (flash_attention_backward shared memory)",
                {{"bytes", bytes}});
  const bool vector = shape.head_dim % kVector<T> == 0 && aligned_to(qkv.data<T>(), 16) &&
                      aligned_to(dout.data<T>(), 16);
  const dim3 grid(unsigned(shape.batch * shape.heads), unsigned((shape.seq + kKeys - 1) / kKeys));
  kernel<<<grid, kThreads, bytes, device.stream>>>(
      dout.data<T>(), qkv.data<T>(), log_sum_exp.data<float>(), delta.data<float>(),
      dq_accumulator.data<float>(), dqkv.data<T>(), shape, 1.0f / std::sqrt(float(shape.head_dim)),
      vector);
}

}  // namespace

void flash_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out,
                              const Tensor& log_sum_exp, Tensor& dqkv, const AttentionShape& shape,
                              const DeviceContext& device) {
  const int64_t rows = shape.batch * shape.heads * shape.seq;
  if (rows == 0 || shape.head_dim == 0) return;
  const int64_t width = shape.heads * shape.head_dim;
  Tensor delta({rows}, ElementType::f32, Device::cuda);
  Tensor dq_accumulator({shape.batch * shape.seq, width}, ElementType::f32, Device::cuda);
  dq_accumulator.fill_zero();
  dispatch_compute_type(qkv.type(), [&]<typename T>(T*) {
    constexpr int kRowsPerBlock = 8;
    flash_delta_kernel<<<unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock), 32 * kRowsPerBlock,
                         0, device.stream>>>(dout.data<T>(), out.data<T>(), delta.data<float>(),
                                             shape);
    switch (flash::padded_head_dim(shape.head_dim)) {
      case 32:
        launch_backward<T, 32>(dout, qkv, delta, dq_accumulator, log_sum_exp, dqkv, shape, device);
        break;
      case 64:
        launch_backward<T, 64>(dout, qkv, delta, dq_accumulator, log_sum_exp, dqkv, shape, device);
        break;
      default:
        launch_backward<T, 128>(dout, qkv, delta, dq_accumulator, log_sum_exp, dqkv, shape, device);
    }
    flash_dq_kernel<<<unsigned(shape.batch * shape.seq), threads_for(width), 0, device.stream>>>(
        dq_accumulator.data<float>(), dqkv.data<T>(), width);
  });
  check_launch("flash_attention_backward", {{"batch", shape.batch},
                                            {"heads", shape.heads},
                                            {"seq", shape.seq},
                                            {"head_dim", shape.head_dim}});
}

}  // namespace loom::exec::cuda
