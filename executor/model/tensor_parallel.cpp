#include "executor/model/tensor_parallel.hpp"

#include <vector>

namespace loom::exec {

Category TensorParallel::comm_category() const {
  return timers_.innermost() == Category::recompute ? Category::recompute : Category::tp_comm;
}

void TensorParallel::wait_for_ranks() {
  if (!timers_.separates_waits()) return;
  ScopedTimer timer(timers_, timers_.innermost() == Category::recompute ? Category::recompute : Category::tp_wait);
  group_->barrier();
}

Tensor TensorParallel::enter(const Tensor& local_rows) {
  if (!sequence_parallel()) return local_rows;
  wait_for_ranks();
  ScopedTimer timer(timers_, comm_category());
  std::vector<int64_t> shape = local_rows.shape();
  shape[0] *= size();
  Tensor full(shape, local_rows.type(), local_rows.device());
  group_->all_gather(local_rows.data<char>(), full.data<char>(), size_t(local_rows.numel()), local_rows.type());
  return full;
}

Tensor TensorParallel::leave(const Tensor& partial_full) {
  if (size() == 1) return partial_full;
  wait_for_ranks();
  ScopedTimer timer(timers_, comm_category());
  if (!sequence_parallel()) {
    Tensor sum = partial_full;  // reduced in place: the partial is not needed afterwards
    group_->all_reduce(sum.data<char>(), size_t(sum.numel()), sum.type(), ReduceOp::sum);
    return sum;
  }
  std::vector<int64_t> shape = partial_full.shape();
  shape[0] /= size();
  Tensor local(shape, partial_full.type(), partial_full.device());
  group_->reduce_scatter(partial_full.data<char>(), local.data<char>(), size_t(local.numel()), local.type(),
                         ReduceOp::sum);
  return local;
}

void TensorParallel::all_reduce(Tensor& x) {
  if (size() == 1) return;
  wait_for_ranks();
  ScopedTimer timer(timers_, comm_category());
  group_->all_reduce(x.data<char>(), size_t(x.numel()), x.type(), ReduceOp::sum);
}

void TensorParallel::all_reduce_max(Tensor& x) {
  if (size() == 1) return;
  wait_for_ranks();
  ScopedTimer timer(timers_, comm_category());
  group_->all_reduce(x.data<char>(), size_t(x.numel()), x.type(), ReduceOp::max);
}

}  // namespace loom::exec
