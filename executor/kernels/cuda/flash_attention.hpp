#pragma once
// Causal FlashAttention-2 (kernels.hpp): forward and backward as tiled kernels that never hold a
// [seq, seq] matrix. head_dim ≤ 128 (kMaxHeadDim).

#include "executor/kernels/cuda/device_context.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/tensor.hpp"

namespace loom::exec::cuda {

constexpr int64_t kMaxHeadDim = 128;

void flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& log_sum_exp,
                             const AttentionShape& shape, const DeviceContext& device);
// Writes all of dqkv.
void flash_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out,
                              const Tensor& log_sum_exp, Tensor& dqkv, const AttentionShape& shape,
                              const DeviceContext& device);

}  // namespace loom::exec::cuda
