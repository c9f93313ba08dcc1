// FlashAttention-2's forward pass (Dao 2023), causal. A block takes 64 queries of one (sequence,
// head), 16 per warp, and walks the key tiles up to and including the diagonal one: per tile,
// S = scale·Q·Kᵀ in registers, an online softmax (a running row max and sum rescale what was
// accumulated so far), P through shared memory, O += P·V. Only Q, one K and V tile and the warps'
// P live in shared memory; log_sum_exp = max + log Σ is saved for the backward pass.
//
// Query and key tiles share one grid, so only the diagonal tile crosses the causal boundary and
// every row sees at least key 0 in the first tile: the running max is finite from then on.

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

constexpr int kTile = 16 * kWarps;  // queries per block, keys per tile

// Shared memory, in elements of T: the block's q, one tile of k and of v, and each warp's P.
template <typename T, int kD>
struct ForwardLayout {
  static constexpr int kStrideD = kD + flash::kPad<T>;
  static constexpr int kStrideKeys = kTile + flash::kPad<T>;
  static constexpr int kQ = kTile * kStrideD;
  static constexpr int kK = kTile * kStrideD;
  static constexpr int kV = kTile * kStrideD;
  static constexpr int kP = kWarps * 16 * kStrideKeys;
  static constexpr int kBytes = int(sizeof(T)) * (kQ + kK + kV + kP);
};

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Grid: (batch·heads, query tiles), the tiles with the most keys first.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(const T* qkv, T* out, float* log_sum_exp, AttentionShape shape,
                         float scale, bool vector) {
  using L = ForwardLayout<T, kD>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* q = reinterpret_cast<T*>(shared_bytes);
  T* k = q + L::kQ;
  T* v = k + L::kK;
  const int warp = threadIdx.x / 32;
  T* p = v + L::kV + warp * 16 * L::kStrideKeys;

  const int64_t pair = blockIdx.x, b = pair / shape.heads, h = pair % shape.heads;
  const int64_t seq = shape.seq, width = shape.heads * shape.head_dim;
  const int d = int(shape.head_dim);
  // The head's q at position 0; its k and v lie width and 2·width further on.
  const T* head = qkv + b * seq * 3 * width + h * d;
  const int query_tile = int(gridDim.y - 1 - blockIdx.y);
  const int64_t q0 = int64_t(query_tile) * kTile;
  flash::load_tile<kD>(q, L::kStrideD, head + q0 * 3 * width, 3 * width,
                       int(min(int64_t(kTile), seq - q0)), d, kTile, vector);

  float o[kD / 8][4];
  flash::zero(o);
  SoftmaxPartial rows[2];  // rows g and g + 8 of the warp's 16, over this lane's columns
  const int64_t first_query = q0 + warp * 16;
  for (int key_tile = 0; key_tile <= query_tile; ++key_tile) {
    const int64_t k0 = int64_t(key_tile) * kTile;
    const int valid_keys = int(min(int64_t(kTile), seq - k0));
    __syncthreads();  // every warp is done with the previous tile's k and v
    flash::load_tile<kD>(k, L::kStrideD, head + k0 * 3 * width + width, 3 * width, valid_keys, d,
                         kTile, vector);
    flash::load_tile<kD>(v, L::kStrideD, head + k0 * 3 * width + 2 * width, 3 * width, valid_keys,
                         d, kTile, vector);
    __syncthreads();

    float s[kTile / 8][4];
    flash::zero(s);
    flash::warp_product<BLayout::kColumns, kTile / 8, kD>(
        s, Operand<T>{q + warp * 16 * L::kStrideD, L::kStrideD}, Operand<T>{k, L::kStrideD});
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t query = first_query + fragment_row(2 * half);
      float tile_max = -INFINITY;
#pragma unroll
      for (int n = 0; n < kTile / 8; ++n) {
#pragma unroll
        for (int i = 2 * half; i < 2 * half + 2; ++i) {
          const int64_t key = k0 + 8 * n + fragment_col(i);
          s[n][i] = key <= query ? s[n][i] * scale : -INFINITY;
          tile_max = fmaxf(tile_max, s[n][i]);
        }
      }
      const float new_max = fmaxf(rows[half].max, quad_max(tile_max));
      const float rescale = softmax_rescale(rows[half].max, new_max);
      float tile_sum = 0;
#pragma unroll
      for (int n = 0; n < kTile / 8; ++n) {
#pragma unroll
        for (int i = 2 * half; i < 2 * half + 2; ++i) {
          s[n][i] = softmax_rescale(s[n][i], new_max);  // exp(s − max); 0 where masked
          tile_sum += s[n][i];
        }
      }
      rows[half] = softmax_merge(rows[half], SoftmaxPartial{new_max, tile_sum});
#pragma unroll
      for (int n = 0; n < kD / 8; ++n) {
        o[n][2 * half] *= rescale;
        o[n][2 * half + 1] *= rescale;
      }
    }
    flash::store_fragments(s, p, L::kStrideKeys, 1);
    __syncwarp();
    flash::warp_product<BLayout::kRows, kD / 8, kTile>(o, Operand<T>{p, L::kStrideKeys},
                                                       Operand<T>{v, L::kStrideD});
  }

  // The four lanes of a row each summed their own columns against the same max.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t query = first_query + fragment_row(2 * half);
    const float sum = quad_sum(rows[half].sum);
    if (query >= seq) continue;
    T* out_row = out + (b * seq + query) * width + h * d;
#pragma unroll
    for (int n = 0; n < kD / 8; ++n) {
#pragma unroll
      for (int i = 2 * half; i < 2 * half + 2; ++i) {
        const int col = 8 * n + fragment_col(i);
        if (col < d) out_row[col] = from_float<T>(o[n][i] / sum);
      }
    }
    if (threadIdx.x % 4 == 0) log_sum_exp[pair * seq + query] = rows[half].max + logf(sum);
  }
}

template <typename T, int kD>
void launch_forward(const Tensor& qkv, Tensor& out, Tensor& log_sum_exp,
                    const AttentionShape& shape, const DeviceContext& device) {
  const auto kernel = flash_forward_kernel<T, kD>;
  const int bytes = ForwardLayout<T, kD>::kBytes;
  check_runtime(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
                "cudaFuncSetAttribute (flash_attention_forward shared memory)", {{"bytes", bytes}});
  const bool vector = shape.head_dim % kVector<T> == 0 && aligned_to(qkv.data<T>(), 16);
  const dim3 grid(unsigned(shape.batch * shape.heads), unsigned((shape.seq + kTile - 1) / kTile));
  kernel<<<grid, kThreads, bytes, device.stream>>>(qkv.data<T>(), out.data<T>(),
                                                   log_sum_exp.data<float>(), shape,
                                                   1.0f / std::sqrt(float(shape.head_dim)), vector);
}

}  // namespace

void flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& log_sum_exp,
                             const AttentionShape& shape, const DeviceContext& device) {
  if (shape.batch * shape.heads * shape.seq == 0 || shape.head_dim == 0) return;
  dispatch_compute_type(qkv.type(), [&]<typename T>(T*) {
    switch (flash::padded_head_dim(shape.head_dim)) {
      case 32:
        launch_forward<T, 32>(qkv, out, log_sum_exp, shape, device);
        break;
      case 64:
        launch_forward<T, 64>(qkv, out, log_sum_exp, shape, device);
        break;
      default:
        launch_forward<T, 128>(qkv, out, log_sum_exp, shape, device);
    }
  });
  check_launch("flash_attention_forward", {{"batch", shape.batch},
                                           {"heads", shape.heads},
                                           {"seq", shape.seq},
                                           {"head_dim", shape.head_dim}});
}

}  // namespace loom::exec::cuda
