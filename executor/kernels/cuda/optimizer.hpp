#pragma once
// The optimizer's kernels: AdamW over f32 master weights and moments, and the sum of squares
// behind gradient-norm clipping (kernels.hpp).

#include "executor/kernels/cuda/device_context.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/tensor.hpp"

namespace loom::exec::cuda {

// With working_copy (bf16), the updated weights are also written there, rounded, in the same pass.
void adamw(Tensor& master, const Tensor& gradient, Tensor& m, Tensor& v,
           const AdamWSettings& settings, Tensor* working_copy, const DeviceContext& device);
// Σ x² (Σ w·x² with weights), accumulated in double; waits for the stream to hand the sum over.
double sum_of_squares(const Tensor& x, const Tensor* weights, const DeviceContext& device);

}  // namespace loom::exec::cuda
