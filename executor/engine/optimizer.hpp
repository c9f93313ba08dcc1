#pragma once
// The step after the last backward: gradient reduction (tensor-parallel sums of the
// sequence-parallel norm and bias gradients, the tied embedding's two copies, data-parallel
// averaging or ZeRO-1 reduce-scatter), the global gradient norm and clipping, AdamW, and with
// ZeRO-1 the all-gather of the updated parameters. With overlap-grad-reduce the reductions and
// gathers run per bucket in DataParallelBuckets, which the optimizer then waits for or starts.

#include "core/plan.hpp"
#include "executor/comm/communicator.hpp"
#include "executor/engine/data_parallel_buckets.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/model/parameters.hpp"
#include "executor/timers/timer_stack.hpp"

namespace loom::exec {

class Optimizer {
 public:
  // `buckets`: the overlapped data parallelism (overlap-grad-reduce with dp > 1), or null.
  Optimizer(const core::Plan& plan, ParameterStore& parameters, ProcessGroups& groups, Kernels& kernels,
            TimerStack& timers, DataParallelBuckets* buckets = nullptr);

  // The schedule's grad_sync: every gradient summed over the ranks that share it. Without
  // buckets, blocking calls over all of them; with them, waits for the buckets' reductions.
  void synchronize_gradients();
  // The optimizer step in two halves around the step's one world-wide all-reduce (run by the
  // trainer, which sums the loss in the same message):
  // this rank's share of the squared global gradient norm, every element counted once across
  // tensor, pipeline and data ranks...
  double local_sum_of_squares();
  // ...and, given the global norm, clipping to the plan's clip-grad, AdamW with `learning_rate`
  // and with ZeRO-1 the all-gather of the updated parameters (started per bucket, not waited for,
  // with overlap-param-gather). `step` counts from 1 (Adam's bias correction).
  void update(double global_norm, double learning_rate, int64_t step);

  // Optimizer state for checkpoints: Adam moments of this rank's part (its ZeRO shard).
  Tensor& first_moment() { return m_; }
  Tensor& second_moment() { return v_; }

 private:
  // The range of the flat buffers this rank updates: all of it, or its ZeRO-1 shard.
  int64_t shard_begin() const;
  int64_t shard_size() const;
  // This rank's gradients after synchronize_gradients: all of them, or its reduced ZeRO-1 block.
  Tensor owned_gradients();

  const core::Plan& plan_;
  ParameterStore& parameters_;
  ProcessGroups& groups_;
  Kernels& kernels_;
  TimerStack& timers_;
  DataParallelBuckets* buckets_;
  bool zero_;
  Tensor m_, v_;
};

// Learning rate at `step` (from 1): linear warm-up over lr-warmup-iters, then cosine decay from
// lr to min-lr at train-iters (Megatron's "cosine" style).
double learning_rate(const core::TrainSpec& training, int64_t step);

}  // namespace loom::exec
