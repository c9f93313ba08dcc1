#pragma once
// The vocabulary-sharded kernels: embedding lookup and its gradient, and the local part of
// vocab-parallel cross-entropy (kernels.hpp). A shard holds rows [vocab_start, vocab_start +
// shard_rows) of the table and the matching logit columns.

#include "executor/kernels/cuda/device_context.hpp"
#include "executor/tensor.hpp"

#include <cstdint>

namespace loom::exec::cuda {

void embedding_forward(const Tensor& tokens, const Tensor& table, int64_t vocab_start, Tensor& out,
                       int64_t count, int64_t shard_rows, int64_t cols,
                       const DeviceContext& device);
void embedding_backward(const Tensor& dout, const Tensor& tokens, int64_t vocab_start,
                        Tensor& dtable, int64_t count, int64_t shard_rows, int64_t cols,
                        const DeviceContext& device);
void cross_entropy_partials(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                            Tensor& row_max, Tensor& sum_exp, Tensor& target_logit, int64_t rows,
                            int64_t cols, const DeviceContext& device);
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                            const Tensor& global_max, const Tensor& global_sum_exp, float scale,
                            Tensor& dlogits, int64_t rows, int64_t cols,
                            const DeviceContext& device);

}  // namespace loom::exec::cuda
