#pragma once
// Megatron-LM's conjugate operations around tensor-parallel regions (Shoeybi et al. 2019, §3):
// entering a region is the identity forward and an all-reduce backward; leaving it is an
// all-reduce forward and the identity backward. With sequence parallelism (Korthikanti et al.
// 2022) the regions outside hold a slice of the token rows, and the pair becomes all-gather /
// reduce-scatter along the rows. The time spent here is tensor-parallel communication, except
// inside a recompute: the simulator counts a recompute's collectives as recompute.

#include "executor/comm/communicator.hpp"
#include "executor/tensor.hpp"
#include "executor/timers/timer_stack.hpp"

namespace loom::exec {

class TensorParallel {
 public:
  TensorParallel(Communicator* group, bool sequence_parallel, TimerStack& timers)
      : group_(group), sequence_parallel_(sequence_parallel), timers_(timers) {}

  int64_t size() const { return group_ ? group_->size() : 1; }
  int64_t rank() const { return group_ ? group_->rank() : 0; }
  bool sequence_parallel() const { return sequence_parallel_ && size() > 1; }

  // Into a region: the full rows (all-gathered with SP; the input itself otherwise).
  Tensor enter(const Tensor& local_rows);
  // Out of a region: the sum over tensor ranks, as this rank's rows (reduce-scattered with SP).
  Tensor leave(const Tensor& partial_full);
  // Backward of enter: the gradient of the full rows, summed over ranks, as this rank's rows.
  Tensor enter_backward(const Tensor& grad_full) { return leave(grad_full); }
  // Backward of leave: the gradient of this rank's rows as full rows.
  Tensor leave_backward(const Tensor& grad_local) { return enter(grad_local); }

  void all_reduce(Tensor& x);
  // Row maxima over ranks for the vocab-parallel loss.
  void all_reduce_max(Tensor& x);

 private:
  // The category of a collective starting now: recompute inside a recompute, tp_comm otherwise.
  Category comm_category() const;
  // Before a collective: the wait for the slowest tensor rank, apart from the transfer (tp_wait;
  // inside a recompute, recompute like its collectives).
  void wait_for_ranks();

  Communicator* group_;
  bool sequence_parallel_;
  TimerStack& timers_;
};

}  // namespace loom::exec
