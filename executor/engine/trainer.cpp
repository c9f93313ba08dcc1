#include "executor/engine/trainer.hpp"

#include "core/error.hpp"
#include "executor/data/batches.hpp"

#include <chrono>
#include <cmath>

namespace loom::exec {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Trainer::Trainer(const core::Plan& plan, ProcessGroups& groups, Communicator& world, Kernels& kernels,
                 const TokenSource& tokens)
    : plan_(plan), groups_(groups), world_(world), kernels_(kernels), tokens_(tokens),
      // A device backend's kernels run asynchronously: each reading of the clock first waits for
      // them, so that a category is charged the work launched in it, not the launches.
      timers_([&kernels] {
        kernels.synchronize();
        return steady_clock_seconds();
      }),
      schedule_(core::build_schedule(plan.parallel.schedule, int32_t(plan.parallel.pipeline_parallel),
                                     int32_t(plan.virtual_stages()), int32_t(plan.microbatches()))) {
  TensorParallel tp(groups.tensor.get(), plan.parallel.sequence_parallel, timers_);
  // Flat buffers padded so that ZeRO-1 splits them evenly over the data-parallel ranks.
  stage_ = std::make_unique<GptStage>(plan, groups.coords.pipeline, tp, kernels, timers_, groups.data->size());
  if (plan.parallel.overlap_grad_reduce && groups.data->size() > 1)
    buckets_ = std::make_unique<DataParallelBuckets>(plan, stage_->parameters(), stage_->parameter_chunks(), groups,
                                                     timers_);
  optimizer_ = std::make_unique<Optimizer>(plan, stage_->parameters(), groups, kernels, timers_, buckets_.get());
  last_backward_microbatch_.assign(size_t(plan.virtual_stages()), -1);
  for (const core::Action& a : schedule_.ranks[size_t(groups.coords.pipeline)])
    if (a.kind == core::ActionKind::backward) last_backward_microbatch_[size_t(a.chunk)] = a.microbatch;
}

void Trainer::finish_parameter_gathers() {
  if (buckets_) buckets_->finish_parameter_gathers();
}

ParameterHooks Trainer::forward_hooks() {
  if (!buckets_) return {};
  ParameterHooks hooks;
  if (plan_.parallel.overlap_param_gather)
    hooks.before_reading = [this](std::span<Parameter* const> parameters) { buckets_->wait_for_parameters(parameters); };
  else
    hooks.before_reading = [this](std::span<Parameter* const>) { buckets_->progress(); };
  return hooks;
}

ParameterHooks Trainer::backward_hooks(const core::Action& a) {
  if (!buckets_) return {};
  ParameterHooks hooks;
  if (a.microbatch == last_backward_microbatch_[size_t(a.chunk)])
    hooks.gradients_written = [this](std::span<Parameter* const> parameters) { buckets_->gradients_final(parameters); };
  else
    hooks.gradients_written = [this](std::span<Parameter* const>) { buckets_->progress(); };
  return hooks;
}

int Trainer::tag(const core::Action& a) const {
  // Both ends must compute the same tag, but each names the data by its own local chunk: use the
  // virtual stage that produced it. One tag per (direction, microbatch, producing stage), modulo
  // the 32768 tags MPI guarantees (messages between two ranks also arrive in order).
  const bool activation = a.kind == core::ActionKind::send_activation || a.kind == core::ActionKind::recv_activation;
  const int64_t stage = schedule_.virtual_stage(int32_t(groups_.coords.pipeline), a.chunk);
  const int64_t producer = a.is_send() ? stage : activation ? stage - 1 : stage + 1;
  const int64_t stages = int64_t(schedule_.pipeline_size) * schedule_.virtual_stages;
  return int(((int64_t(a.microbatch) * stages + producer) * 2 + (activation ? 0 : 1)) % 32768);
}

void Trainer::run_action(const core::Action& a, float loss_scale, StepResult& result) {
  using core::ActionKind;
  const std::pair<int64_t, int64_t> key{a.microbatch, a.chunk};
  const int64_t rows = stage_->local_rows(), h = stage_->hidden();
  switch (a.kind) {
    case ActionKind::forward: {
      ScopedTimer timer(timers_, Category::forward);  // less its collectives, timed as tp_comm
      Tensor input;
      if (auto it = activations_in_.find(key); it != activations_in_.end()) {
        input = it->second;
        activations_in_.erase(it);
      }
      Tensor output = stage_->forward(a.microbatch, a.chunk, input, inputs_[size_t(a.microbatch)].data(),
                                      targets_[size_t(a.microbatch)].data(), forward_hooks());
      if (output.defined()) activations_out_[key] = output;
      break;
    }
    case ActionKind::backward: {
      ScopedTimer timer(timers_, Category::backward);  // less its collectives and recompute
      Tensor grad_output;
      if (auto it = grads_in_.find(key); it != grads_in_.end()) {
        grad_output = it->second;
        grads_in_.erase(it);
      }
      Tensor grad_input = stage_->backward(a.microbatch, a.chunk, grad_output, loss_scale, backward_hooks(a));
      if (grad_input.defined()) grads_out_[key] = grad_input;
      break;
    }
    case ActionKind::send_activation:
    case ActionKind::send_grad: {
      ScopedTimer timer(timers_, Category::pp_comm);
      auto& outbox = a.kind == ActionKind::send_activation ? activations_out_ : grads_out_;
      auto it = outbox.find(key);
      if (it == outbox.end()) throw Error("schedule sends microbatch {} chunk {} before computing it", a.microbatch, a.chunk);
      const Tensor& sent = it->second;
      groups_.pipeline->send(sent.data<char>(), size_t(sent.numel()), sent.type(), a.peer, tag(a));
      outbox.erase(it);
      break;
    }
    case ActionKind::recv_activation:
    case ActionKind::recv_grad: {
      ScopedTimer timer(timers_, Category::pp_comm);
      Tensor buffer = stage_->precision().activation({rows, h});
      groups_.pipeline->recv(buffer.data<char>(), size_t(buffer.numel()), buffer.type(), a.peer, tag(a));
      (a.kind == ActionKind::recv_activation ? activations_in_ : grads_in_)[key] = buffer;
      break;
    }
    case ActionKind::grad_sync: optimizer_->synchronize_gradients(); break;
    case ActionKind::optimizer_step: optimizer_step(result); break;
  }
}

void Trainer::optimizer_step(StepResult& result) {
  const double microbatches = double(plan_.microbatches());
  // The last stage's tensor rank 0 of every data-parallel replica contributes its share of the
  // loss; every rank its share of the squared gradient norm. One all-reduce for both, untimed by
  // any category (as the simulator's step-statistics barrier: waiting for the last rank is idle).
  double statistics[2] = {
      (stage_->has_output_layer() && groups_.coords.tensor == 0)
          ? stage_->loss_sum() / microbatches / double(plan_.parallel.data_parallel)
          : 0.0,
      optimizer_->local_sum_of_squares(),
  };
  world_.all_reduce_sum(statistics, 2);
  result.loss = statistics[0];
  result.grad_norm = std::sqrt(statistics[1]);
  // Every rank holds the same sums, so every rank stops here alike, before a non-finite update.
  if (!std::isfinite(result.loss)) throw Error("step {}: the loss is {}; stopping the run", result.step, result.loss);
  if (!std::isfinite(result.grad_norm))
    throw Error("step {}: the gradient norm is {}; stopping the run", result.step, result.grad_norm);
  optimizer_->update(result.grad_norm, result.learning_rate, result.step);
}

StepResult Trainer::train_step(int64_t step) {
  const auto started = std::chrono::steady_clock::now();
  const core::ParallelPlan& p = plan_.parallel;
  const int64_t seq = plan_.model.seq_length, m = plan_.microbatches();
  // The global batch is a function of (seed, step) only; this rank takes its data-parallel
  // slice, then one block of rows per microbatch.
  const std::vector<int32_t> batch =
      global_batch_tokens(tokens_, uint64_t(plan_.training.seed), step, plan_.training.global_batch_size, seq);
  const auto mine = data_parallel_rows(batch, seq, p.data_parallel, groups_.coords.data);
  inputs_.assign(size_t(m), {});
  targets_.assign(size_t(m), {});
  for (int64_t mb = 0; mb < m; ++mb) {
    InputsAndTargets split = split_inputs_targets(microbatch_rows(mine, seq, m, mb), seq);
    inputs_[size_t(mb)] = std::move(split.inputs);
    targets_[size_t(mb)] = std::move(split.targets);
  }

  stage_->parameters().flat_grads().fill_zero();
  stage_->reset_loss();
  StepResult result;
  result.step = step;
  result.learning_rate = learning_rate(plan_.training, step);
  const float loss_scale = 1.0f / float(m);  // the step's loss is the mean over its microbatches
  for (const core::Action& action : schedule_.ranks[size_t(groups_.coords.pipeline)])
    run_action(action, loss_scale, result);
  kernels_.synchronize();
  result.step_time_s = seconds_since(started);
  result.tokens_per_s = double(plan_.training.global_batch_size * seq) / result.step_time_s;
  return result;
}

}  // namespace loom::exec
