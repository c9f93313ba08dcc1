#include "executor/model/tensor_parallel.hpp"

#include <algorithm>
#include <vector>

namespace loom::exec {

Category TensorParallel::comm_category() const {
  return timers_.innermost() == Category::recompute ? Category::recompute : Category::tp_comm;
}

Tensor TensorParallel::enter(const Tensor& local_rows) {
  if (!sequence_parallel()) return local_rows;
  ScopedTimer timer(timers_, comm_category());
  std::vector<int64_t> shape = local_rows.shape();
  shape[0] *= size();
  Tensor full(shape);
  group_->all_gather(local_rows.data<float>(), full.data<float>(), size_t(local_rows.numel()));
  return full;
}

Tensor TensorParallel::leave(const Tensor& partial_full) {
  if (size() == 1) return partial_full;
  ScopedTimer timer(timers_, comm_category());
  if (!sequence_parallel()) {
    Tensor sum = partial_full;  // reduced in place: the partial is not needed afterwards
    group_->all_reduce(sum.data<float>(), size_t(sum.numel()), ReduceOp::sum);
    return sum;
  }
  std::vector<int64_t> shape = partial_full.shape();
  shape[0] /= size();
  Tensor local(shape);
  group_->reduce_scatter(partial_full.data<float>(), local.data<float>(), size_t(local.numel()), ReduceOp::sum);
  return local;
}

void TensorParallel::all_reduce(Tensor& x) {
  if (size() == 1) return;
  ScopedTimer timer(timers_, comm_category());
  group_->all_reduce(x.data<float>(), size_t(x.numel()), ReduceOp::sum);
}

void TensorParallel::all_reduce_max(Tensor& x) {
  if (size() == 1) return;
  ScopedTimer timer(timers_, comm_category());
  const size_t n = size_t(x.numel());
  std::vector<float> gathered(n * size_t(size()));
  group_->all_gather(x.data<float>(), gathered.data(), n);
  float* out = x.data<float>();
  for (size_t r = 0; r < size_t(size()); ++r)
    for (size_t i = 0; i < n; ++i) out[i] = std::max(out[i], gathered[r * n + i]);
}

}  // namespace loom::exec
