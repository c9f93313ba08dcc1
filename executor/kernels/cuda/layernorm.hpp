#pragma once
// Layer norm over the last axis, one block per row, statistics in fp32 (kernels.hpp).

#include "executor/kernels/cuda/device_context.hpp"
#include "executor/tensor.hpp"

#include <cstdint>

namespace loom::exec::cuda {

void layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                       Tensor& y, Tensor& mean, Tensor& rstd, int64_t rows, int64_t cols,
                       const DeviceContext& device);
// Writes dx; adds into dgamma and dbeta (f32).
void layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                        const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, int64_t rows,
                        int64_t cols, const DeviceContext& device);

}  // namespace loom::exec::cuda
