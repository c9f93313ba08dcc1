#pragma once
// Megatron-Core's overlapped data parallelism (overlap-grad-reduce, overlap-param-gather) over
// gradient buckets (gradient_buckets.hpp). During the last microbatch's backward of a model
// chunk, as soon as every gradient of a bucket is final, the bucket's data-parallel reduction
// starts non-blocking — an all-reduce, or with ZeRO-1 a reduce-scatter into each rank's part of
// its optimizer shard — and the backward goes on; the schedule's grad_sync waits for them all.
// With overlap-param-gather, the all-gather of the updated parameters starts per bucket after
// the optimizer step and is waited for bucket by bucket just before the next forward reads them.
//
// What comes before a bucket's reduction stays before it, so that the sums are those of the
// one-bucket synchronisation, in the same order: the tensor-parallel sum of sequence-parallel
// partial gradients runs (blocking; tensor ranks run in step) when the bucket is complete; the
// tied embedding, summed across stages whose backwards end at different times, has a bucket of
// its own that starts at grad_sync, after that sum.
//
// Every moment spent in a collective here — starting one, letting pending ones advance, waiting
// — is dp_comm, nested in the backward, forward or optimizer step around it: what the run
// measures as dp_comm is the exposed part of the data-parallel communication.

#include "core/plan.hpp"
#include "executor/comm/communicator.hpp"
#include "executor/engine/gradient_buckets.hpp"
#include "executor/model/parameters.hpp"
#include "executor/timers/timer_stack.hpp"

#include <memory>
#include <span>
#include <vector>

namespace loom::exec {

class DataParallelBuckets {
 public:
  // `parameter_chunks`: the model chunk of each parameter of `parameters`, by index. The
  // distributed optimizer's shards are those of Optimizer: [r·S, (r+1)·S) of the padded flat
  // buffers for data rank r, S = padded size / data-parallel size.
  DataParallelBuckets(const core::Plan& plan, ParameterStore& parameters, const std::vector<int64_t>& parameter_chunks,
                      ProcessGroups& groups, TimerStack& timers);
  ~DataParallelBuckets();  // completes whatever is still pending
  DataParallelBuckets(const DataParallelBuckets&) = delete;
  DataParallelBuckets& operator=(const DataParallelBuckets&) = delete;

  const std::vector<GradientBucket>& buckets() const { return buckets_; }

  // The last backward of their chunk has written these gradients: starts the reduction of every
  // bucket they complete, and lets pending ones advance.
  void gradients_final(std::span<Parameter* const> parameters);
  // Lets pending collectives advance (between layers of the other backwards and forwards).
  void progress();
  // The schedule's grad_sync: sums the tied embedding across stages and starts its bucket, then
  // waits for every bucket. Error if a bucket's gradients were never all reported final.
  void finish_gradient_sync();

  // ZeRO-1 after the optimizer step: starts every bucket's parameter all-gather, in the order the
  // forward reads them.
  void start_parameter_gathers();
  // Before the forward reads these parameters: waits for the gathers of their buckets.
  void wait_for_parameters(std::span<Parameter* const> parameters);
  // Waits for every pending gather (before the values are read whole: a checkpoint, the end of
  // the run).
  void finish_parameter_gathers();

 private:
  void start_reduction(size_t bucket);
  // ZeRO-1: the part of [begin, end) in each data rank's shard, in rank order.
  std::vector<size_t> shard_blocks(const GradientBucket& bucket) const;

  const core::Plan& plan_;
  ParameterStore& parameters_;
  ProcessGroups& groups_;
  TimerStack& timers_;
  bool zero_;
  int64_t shard_size_;
  std::vector<GradientBucket> buckets_;
  std::vector<size_t> bucket_of_;            // by parameter index
  std::vector<size_t> gradients_remaining_;  // by bucket: parameters not yet final this step
  std::vector<bool> reduction_started_;      // by bucket, this step
  std::vector<std::unique_ptr<PendingCollective>> reductions_, gathers_;  // by bucket; null: none pending
};

}  // namespace loom::exec
