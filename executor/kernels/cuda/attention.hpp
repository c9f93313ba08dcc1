#pragma once
// Unfused causal self-attention (kernels.hpp): strided-batched cuBLASLt GEMMs over the heads of
// one sequence at a time, on views of qkv, and row-wise causal softmax kernels in between.

#include "executor/kernels/cuda/device_context.hpp"
#include "executor/kernels/cuda/gemm.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/tensor.hpp"

namespace loom::exec::cuda {

void attention_forward(const Tensor& qkv, Tensor& out, Tensor& probabilities,
                       const AttentionShape& shape, Gemm& gemm, const DeviceContext& device);
// Writes all of dqkv.
void attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& probabilities,
                        Tensor& dqkv, const AttentionShape& shape, Gemm& gemm,
                        const DeviceContext& device);

}  // namespace loom::exec::cuda
