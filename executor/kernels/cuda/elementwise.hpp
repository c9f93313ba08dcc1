#pragma once
// The elementwise kernels of the CUDA backend, on tensors the checking front (kernels.hpp) has
// already checked: the same semantics as the CPU kernels, computed in fp32 whatever the storage.

#include "executor/kernels/cuda/device_context.hpp"
#include "executor/tensor.hpp"

#include <cstdint>

namespace loom::exec::cuda {

void add(const Tensor& a, const Tensor& b, Tensor& out, const DeviceContext& device);
void add_bias(Tensor& x, const Tensor& bias, int64_t rows, int64_t cols,
              const DeviceContext& device);
void bias_backward(const Tensor& dy, Tensor& dbias, int64_t rows, int64_t cols,
                   const DeviceContext& device);
void gelu_forward(const Tensor& x, Tensor& y, const DeviceContext& device);
void gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const DeviceContext& device);
void scale(Tensor& x, float factor, const DeviceContext& device);
// f32 → bf16 (round to nearest even) or bf16 → f32.
void cast(const Tensor& from, Tensor& to, const DeviceContext& device);

}  // namespace loom::exec::cuda
