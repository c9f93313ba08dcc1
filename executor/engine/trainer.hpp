#pragma once
// One rank's training loop: each step walks this pipeline rank's action list from core/schedule
// (the same list the simulator timed) with blocking point-to-point in list order, accumulates
// gradients over the microbatches, synchronises them and steps the optimizer. With
// overlap-grad-reduce (dp > 1) the data-parallel reductions start bucket by bucket during each
// chunk's last backward, and with overlap-param-gather the parameter gathers end bucket by bucket
// in the next forward (DataParallelBuckets).

#include "core/plan.hpp"
#include "core/schedule.hpp"
#include "executor/comm/communicator.hpp"
#include "executor/data/token_source.hpp"
#include "executor/engine/data_parallel_buckets.hpp"
#include "executor/engine/optimizer.hpp"
#include "executor/model/gpt_stage.hpp"
#include "executor/timers/timer_stack.hpp"

#include <map>
#include <memory>

namespace loom::exec {

struct StepResult {
  int64_t step = 0;
  double loss = 0;           // mean over the global batch's tokens
  double grad_norm = 0;      // before clipping
  double learning_rate = 0;
  double step_time_s = 0;
  double tokens_per_s = 0;
};

class Trainer {
 public:
  Trainer(const core::Plan& plan, ProcessGroups& groups, Communicator& world, Kernels& kernels,
          const TokenSource& tokens);

  // Trains step `step` (from 1). Throws loom::Error naming the step when the loss or the
  // gradient norm is not finite.
  StepResult train_step(int64_t step);

  GptStage& stage() { return *stage_; }
  const core::Plan& plan() const { return plan_; }
  ProcessGroups& groups() { return groups_; }
  Optimizer& optimizer() { return *optimizer_; }
  TimerStack& timers() { return timers_; }  // this rank's time per category
  Kernels& kernels() { return kernels_; }
  // Waits for the parameter gathers still pending (overlap-param-gather), so that every value is
  // in place: before a checkpoint or a model is written, and at the end of the run.
  void finish_parameter_gathers();

 private:
  void run_action(const core::Action& action, float loss_scale, StepResult& result);
  // The schedule's optimizer_step: the local gradient norm, the step's one world-wide all-reduce
  // (loss and squared norm together), the finiteness check, then clipping and AdamW.
  void optimizer_step(StepResult& result);
  int tag(const core::Action& action) const;
  // What the data-parallel buckets see of a forward, and of the backward `action`.
  ParameterHooks forward_hooks();
  ParameterHooks backward_hooks(const core::Action& action);

  const core::Plan& plan_;
  ProcessGroups& groups_;
  Communicator& world_;
  Kernels& kernels_;
  const TokenSource& tokens_;
  TimerStack timers_;
  core::PipelineSchedule schedule_;
  std::unique_ptr<GptStage> stage_;
  std::unique_ptr<DataParallelBuckets> buckets_;  // overlap-grad-reduce with dp > 1; else null
  std::unique_ptr<Optimizer> optimizer_;
  // By chunk: the microbatch of its last backward in this rank's action list, the one during
  // which its gradients become final.
  std::vector<int64_t> last_backward_microbatch_;
  // Per step: this rank's inputs/targets by microbatch, and tensors waiting to be sent or used.
  std::vector<std::vector<int32_t>> inputs_, targets_;
  std::map<std::pair<int64_t, int64_t>, Tensor> activations_in_, activations_out_, grads_in_, grads_out_;
};

}  // namespace loom::exec
