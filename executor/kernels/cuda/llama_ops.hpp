#pragma once
// The kernels Llama adds to GPT-2's (kernels.hpp): RMSNorm, SwiGLU, rotary positions and the
// expansion of grouped-query attention's key/value groups, computed in fp32 whatever the storage.

#include "executor/kernels/cuda/device_context.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/tensor.hpp"

#include <cstdint>

namespace loom::exec::cuda {

void rmsnorm_forward(const Tensor& x, const Tensor& gamma, float eps, Tensor& y, Tensor& rstd,
                     int64_t rows, int64_t cols, const DeviceContext& device);
// Writes dx; adds into dgamma (f32).
void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& rstd,
                      Tensor& dx, Tensor& dgamma, int64_t rows, int64_t cols,
                      const DeviceContext& device);
// gate_up [rows, 2·f] = [gate | up] per row; y [rows, f].
void swiglu_forward(const Tensor& gate_up, Tensor& y, int64_t rows, int64_t f,
                    const DeviceContext& device);
// Writes all of dgate_up.
void swiglu_backward(const Tensor& dy, const Tensor& gate_up, Tensor& dgate_up, int64_t rows,
                     int64_t f, const DeviceContext& device);
// In place on the q heads and k groups of qkv; `inverse` turns by the negated angles.
void rotary(Tensor& qkv, const GroupedShape& shape, float base, bool inverse,
            const DeviceContext& device);
void expand_query_groups(const Tensor& grouped, Tensor& full, const GroupedShape& shape,
                         const DeviceContext& device);
// Overwrites grouped.
void reduce_query_groups(const Tensor& full, Tensor& grouped, const GroupedShape& shape,
                         const DeviceContext& device);

}  // namespace loom::exec::cuda
