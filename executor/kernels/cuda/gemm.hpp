#pragma once
// Row-major GEMMs through cuBLASLt: c = alpha·op(a)·op(b) + beta·c, optionally strided-batched,
// on operands that may be strided views (one head's columns of qkv). f32 runs in pure fp32
// (CUBLAS_COMPUTE_32F, no TF32), so results match the CPU's to float rounding; bf16 inputs
// accumulate in fp32 and write bf16 or f32 (weight gradients into their f32 main gradients).

#include "executor/kernels/cuda/device_pool.hpp"
#include "executor/tensor.hpp"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <type_traits>

namespace loom::exec::cuda {

// A row-major matrix operand as stored: element (r, c) of batch i at data + i·batch_stride +
// r·row_stride + c (in elements). Transposed operands are stored transposed (a as [k, m]).
struct MatrixOperand {
  const void* data = nullptr;
  int64_t row_stride = 0;
  int64_t batch_stride = 0;
};

struct GemmProblem {
  ElementType inputs = ElementType::f32;  // a and b
  ElementType output = ElementType::f32;  // c: inputs' type or f32
  bool transpose_a = false;
  bool transpose_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t batch = 1;
  MatrixOperand a, b;
  void* c = nullptr;
  int64_t c_row_stride = 0;
  int64_t c_batch_stride = 0;
  float alpha = 1;
  float beta = 0;
};

class Gemm {
 public:
  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Runs on the compute stream; `caller` names it in errors. m, n, k > 0.
  void run(const GemmProblem& problem, const char* caller);

 private:
  // What cuBLASLt's choice of algorithm depends on: types, shapes, strides and the pointers'
  // alignments (a view's offset can make them less aligned than cudaMalloc's 256 bytes).
  struct Key {
    ElementType inputs, output;
    bool transpose_a, transpose_b;
    int64_t m, n, k, batch;
    int64_t a_row_stride, a_batch_stride, b_row_stride, b_batch_stride, c_row_stride,
        c_batch_stride;
    uint32_t a_alignment, b_alignment, c_alignment;
    auto operator<=>(const Key&) const = default;
  };
  struct Plan;

  const Plan& plan_for(const Key& key, const GemmProblem& problem, const char* caller);

  cudaStream_t stream_;
  std::unique_ptr<std::remove_pointer_t<cublasLtHandle_t>, cublasStatus_t (*)(cublasLtHandle_t)>
      handle_;
  PoolBlock workspace_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace loom::exec::cuda
