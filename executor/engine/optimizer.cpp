#include "executor/engine/optimizer.hpp"

#include "executor/engine/gradient_sums.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace loom::exec {

double learning_rate(const core::TrainSpec& t, int64_t step) {
  if (t.lr_warmup_iters > 0 && step <= t.lr_warmup_iters) return t.lr * double(step) / double(t.lr_warmup_iters);
  const double span = double(std::max<int64_t>(1, t.train_iters - t.lr_warmup_iters));
  const double progress = std::min(1.0, double(step - t.lr_warmup_iters) / span);
  return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + std::cos(M_PI * progress));
}

Optimizer::Optimizer(const core::Plan& plan, ParameterStore& parameters, ProcessGroups& groups, Kernels& kernels,
                     TimerStack& timers, DataParallelBuckets* buckets)
    : plan_(plan), parameters_(parameters), groups_(groups), kernels_(kernels), timers_(timers), buckets_(buckets),
      zero_(plan.parallel.distributed_optimizer && groups.data->size() > 1) {
  m_ = Tensor::zeros({shard_size()}, ElementType::f32, kernels.device());
  v_ = Tensor::zeros({shard_size()}, ElementType::f32, kernels.device());
}

int64_t Optimizer::shard_size() const { return zero_ ? parameters_.padded_size() / groups_.data->size() : parameters_.padded_size(); }
int64_t Optimizer::shard_begin() const { return zero_ ? groups_.data->rank() * shard_size() : 0; }

void Optimizer::synchronize_gradients() {
  ScopedTimer timer(timers_, Category::dp_comm);
  if (buckets_) {
    buckets_->finish_gradient_sync();
    return;
  }
  for (Parameter& p : parameters_.all())
    if (has_partial_sequence_parallel_gradient(p, plan_, groups_)) sum_over_tensor_ranks(p, groups_);
  if (Parameter* embedding = tied_embedding_to_sum(plan_, groups_, parameters_)) sum_over_embedding_stages(*embedding, groups_);
  Tensor& flat = parameters_.flat_grads();
  if (groups_.data->size() == 1) return;
  wait_for_data_ranks(*groups_.data, timers_);
  if (zero_)
    groups_.data->reduce_scatter(flat.data<float>(), flat.data<float>() + shard_begin(), size_t(shard_size()),
                                 ReduceOp::average);
  else
    groups_.data->all_reduce(flat.data<float>(), size_t(flat.numel()), ReduceOp::average);
}

Tensor Optimizer::owned_gradients() {
  // ZeRO-1: this rank's reduced gradients sit in its own block of the gradient buffer.
  return zero_ ? parameters_.flat_grads().rows(shard_begin(), shard_begin() + shard_size()) : parameters_.flat_grads();
}

double Optimizer::local_sum_of_squares() {
  ScopedTimer timer(timers_, Category::optimizer);
  // With data parallelism and no ZeRO every replica holds the same averaged gradients: one of
  // them counts them. Under ZeRO-1 each counts its own block.
  const bool contributes = zero_ || groups_.data->rank() == 0;
  if (!contributes) return 0.0;
  const Tensor grads = owned_gradients();
  const int64_t begin = shard_begin(), end = shard_begin() + shard_size();
  double sum = 0;
  for (const auto& [run_begin, run_end] : parameters_.norm_runs()) {
    const int64_t lo = std::max(begin, run_begin), hi = std::min(end, run_end);
    if (lo < hi) sum += kernels_.sum_of_squares(grads.rows(lo - begin, hi - begin));
  }
  return sum;
}

void Optimizer::update(double norm, double lr, int64_t step) {
  // All of it optimizer but the ZeRO-1 all-gather (dp_comm, nested).
  ScopedTimer timer(timers_, Category::optimizer);
  Tensor grads = owned_gradients();
  const int64_t begin = shard_begin(), size = shard_size();
  const double clip = plan_.training.clip_grad;
  if (clip > 0 && norm > clip) kernels_.scale(grads, float(clip / (norm + 1e-6)));

  // AdamW per parameter (weight decay for matrices only), over the part of the flat buffers this
  // rank owns.
  const core::TrainSpec& t = plan_.training;
  Tensor& values = parameters_.flat_values();
  Tensor* working = parameters_.working_values();
  for (const Parameter& p : parameters_.all()) {
    const int64_t lo = std::max(begin, p.offset), hi = std::min(begin + size, p.offset + p.value.numel());
    if (lo >= hi) continue;
    Tensor value = values.rows(lo, hi), grad = grads.rows(lo - begin, hi - begin);
    Tensor m = m_.rows(lo - begin, hi - begin), v = v_.rows(lo - begin, hi - begin);
    Tensor working_part = working ? working->rows(lo, hi) : Tensor();
    const AdamWSettings settings{float(lr),          float(t.adam_beta1),
                                 float(t.adam_beta2), float(t.adam_eps),
                                 takes_weight_decay(p.kind) ? float(t.weight_decay) : 0.0f, step};
    kernels_.adamw(value, grad, m, v, settings, working ? &working_part : nullptr);
  }
  if (!zero_) return;
  if (buckets_ && plan_.parallel.overlap_param_gather) {
    buckets_->start_parameter_gathers();  // waited for by the next forward, bucket by bucket
    return;
  }
  ScopedTimer gather(timers_, Category::dp_comm);
  groups_.data->all_gather(values.data<float>() + begin, values.data<float>(), size_t(size));  // in place
  parameters_.refresh_working_copy();  // the other ranks' shards
}

}  // namespace loom::exec
