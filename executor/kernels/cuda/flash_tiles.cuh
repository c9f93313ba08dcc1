#pragma once
// The building blocks of the flash attention kernels (flash_forward.cu, flash_backward.cu): one
// warp's tile products and the copies of q, k, v, o rows into shared memory.
//
// Every product is C += A·B for a warp: C is 16 rows × 8·N columns held in registers in the
// accumulator layout of the tensor cores' mma.m16n8k16 (lane = 4·g + t holds rows g and g + 8,
// columns 8·n + 2t and 8·n + 2t + 1 of each 8-column block n), A and B are in shared memory.
// bf16 runs on the tensor cores (ldmatrix and mma.sync, fp32 accumulation); f32 computes the same
// elements with fp32 FMAs, so both types share the softmax and masking code, which needs to know
// which row and column each accumulator holds (the reason for mma.sync over nvcuda::wmma, whose
// fragment layout is unspecified).

#include "executor/kernels/cuda/device_support.cuh"

#include <cuda_bf16.h>

#include <cstdint>

namespace loom::exec::cuda::flash {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

// An operand in shared memory, rows `stride` elements apart. A is always read along its rows
// (element (m, k) at data[m·stride + k]); B either by columns (kColumns: (k, n) at
// data[n·stride + k], as Kᵀ is read from K) or by rows (kRows: (k, n) at data[k·stride + n], as V).
template <typename T>
struct Operand {
  const T* data;
  int stride;
};
enum class BLayout { kColumns, kRows };

// The accumulator element (i ∈ 0..3) of a lane, as (row, column within an 8-column block).
__device__ __forceinline__ int fragment_row(int i) {
  return (threadIdx.x % 32) / 4 + 8 * (i / 2);
}
__device__ __forceinline__ int fragment_col(int i) {
  return 2 * (threadIdx.x % 4) + i % 2;
}

template <BLayout kB, typename T>
__device__ __forceinline__ T b_element(Operand<T> b, int k, int n) {
  return kB == BLayout::kColumns ? b.data[n * b.stride + k] : b.data[k * b.stride + n];
}

// c[n] += A(16 × K)·B(K × 8N).
template <BLayout kB, int N, int K>
__device__ __forceinline__ void warp_product(float (&c)[N][4], Operand<float> a, Operand<float> b) {
  const int g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
#pragma unroll 2
  for (int k = 0; k < K; ++k) {
    const float a0 = a.data[g * a.stride + k];
    const float a1 = a.data[(g + 8) * a.stride + k];
#pragma unroll
    for (int n = 0; n < N; ++n) {
      const float b0 = b_element<kB>(b, k, 8 * n + 2 * t);
      const float b1 = b_element<kB>(b, k, 8 * n + 2 * t + 1);
      c[n][0] += a0 * b0;
      c[n][1] += a0 * b1;
      c[n][2] += a1 * b0;
      c[n][3] += a1 * b1;
    }
  }
}

// ldmatrix: lane 8j + r gives the address of row r of 8×8 matrix j (16 bytes, 16-byte aligned);
// register j of lane 4g + t receives row g, columns 2t and 2t + 1 of matrix j — or, transposed,
// rows 2t and 2t + 1 of column g.
__device__ __forceinline__ void load_matrices(uint32_t (&r)[4], const __nv_bfloat16* row) {
  const unsigned address = unsigned(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void load_matrices_transposed(uint32_t (&r)[4],
                                                         const __nv_bfloat16* row) {
  const unsigned address = unsigned(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// d += a·b for one 16 × 8 × 16 tile; the fragments as the PTX ISA lays them out ("Matrix
// Fragments for mma.m16n8k16"): a holds rows g and g + 8 at k = 2t, 2t + 1 and 2t + 8, 2t + 9;
// b column g at the same k.
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The same product on the tensor cores. Per 16-wide step of k, one ldmatrix brings A's four 8×8
// quarters (rows 0–7 and 8–15 at k and k + 8), and one per pair of 8-column blocks brings B's;
// B read by rows is transposed on the way.
template <BLayout kB, int N, int K>
__device__ __forceinline__ void warp_product(float (&c)[N][4], Operand<__nv_bfloat16> a,
                                             Operand<__nv_bfloat16> b) {
  static_assert(K % 16 == 0 && N % 2 == 0, "whole 16 × 16 × 16 steps");
  const int lane = threadIdx.x % 32, r = lane % 8, j = lane / 8;
#pragma unroll
  for (int k = 0; k < K; k += 16) {
    uint32_t af[4];
    load_matrices(af, a.data + (r + 8 * (j % 2)) * a.stride + k + 8 * (j / 2));
#pragma unroll
    for (int n = 0; n < N; n += 2) {
      uint32_t bf[4];  // b0, b1 of block n, then of block n + 1
      if constexpr (kB == BLayout::kColumns) {
        load_matrices(bf, b.data + (8 * n + r + 8 * (j / 2)) * b.stride + k + 8 * (j % 2));
      } else {
        load_matrices_transposed(bf,
                                 b.data + (k + r + 8 * (j % 2)) * b.stride + 8 * n + 8 * (j / 2));
      }
      mma(c[n], af, bf[0], bf[1]);
      mma(c[n + 1], af, bf[2], bf[3]);
    }
  }
}

// Writes a lane's accumulators, converted to T, into a 16 × 8N tile of shared memory
// (element (r, c) at data[r·row_stride + c·col_stride]).
template <int N, typename T>
__device__ __forceinline__ void store_fragments(const float (&c)[N][4], T* data, int row_stride,
                                                int col_stride) {
#pragma unroll
  for (int n = 0; n < N; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      data[fragment_row(i) * row_stride + (8 * n + fragment_col(i)) * col_stride] =
          from_float<T>(c[n][i]);
    }
  }
}

template <int N>
__device__ __forceinline__ void zero(float (&c)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n) c[n][0] = c[n][1] = c[n][2] = c[n][3] = 0.0f;
}

// Rows [0, tile_rows) × columns [0, kD) of a tile from global rows `stride` elements apart, zero
// beyond valid_rows and head_dim, into shared memory rows `row_stride` apart. W elements per
// thread and step: 16 bytes where the rows and head_dim allow, else 1.
template <int kD, int W, typename T>
__device__ void copy_tile(T* shared, int row_stride, const T* global, int64_t stride,
                          int valid_rows, int head_dim, int tile_rows) {
  constexpr int kChunks = kD / W;  // per row
  for (int index = threadIdx.x; index < tile_rows * kChunks; index += kThreads) {
    const int r = index / kChunks, c = index % kChunks * W;
    Vec<T, W> v;
    if (r < valid_rows && c < head_dim) {
      v = load_vec<W>(global + r * stride + c);
    } else {
#pragma unroll
      for (int j = 0; j < W; ++j) v.v[j] = from_float<T>(0.0f);
    }
    store_vec<W>(shared + r * row_stride + c, v);
  }
}

// `vector`: head_dim is a multiple of the 16-byte vector and the global rows are 16-byte aligned.
template <int kD, typename T>
__device__ void load_tile(T* shared, int row_stride, const T* global, int64_t stride,
                          int valid_rows, int head_dim, int tile_rows, bool vector) {
  if (vector) {
    copy_tile<kD, kVector<T>>(shared, row_stride, global, stride, valid_rows, head_dim, tile_rows);
  } else {
    copy_tile<kD, 1>(shared, row_stride, global, stride, valid_rows, head_dim, tile_rows);
  }
}

// The element type's row padding in shared memory: 16 bytes, so that the eight rows of an
// ldmatrix (or of a lane group's loads) fall in different banks and rows stay 16-byte aligned.
template <typename T>
inline constexpr int kPad = kVector<T>;

// kD: head_dim rounded up to the kernels' instantiations.
inline int padded_head_dim(int64_t head_dim) {
  return head_dim <= 32 ? 32 : head_dim <= 64 ? 64 : 128;
}

}  // namespace loom::exec::cuda::flash
