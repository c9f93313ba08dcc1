#include "executor/engine/optimizer.hpp"

#include <cmath>
#include <cstring>

namespace loom::exec {

double weighted_sum_of_squares(const float* gradients, const float* weights, int64_t count) {
  double squares = 0;
  for (int64_t i = 0; i < count; ++i)
    squares += double(weights[i]) * double(gradients[i]) * double(gradients[i]);
  return squares;
}

double learning_rate(const core::TrainSpec& t, int64_t step) {
  if (t.lr_warmup_iters > 0 && step <= t.lr_warmup_iters) return t.lr * double(step) / double(t.lr_warmup_iters);
  const double span = double(std::max<int64_t>(1, t.train_iters - t.lr_warmup_iters));
  const double progress = std::min(1.0, double(step - t.lr_warmup_iters) / span);
  return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + std::cos(M_PI * progress));
}

Optimizer::Optimizer(const core::Plan& plan, ParameterStore& parameters, ProcessGroups& groups, Kernels& kernels,
                     TimerStack& timers)
    : plan_(plan), parameters_(parameters), groups_(groups), kernels_(kernels), timers_(timers),
      zero_(plan.parallel.distributed_optimizer && groups.data->size() > 1) {
  m_ = Tensor::zeros({shard_size()});
  v_ = Tensor::zeros({shard_size()});
}

int64_t Optimizer::shard_size() const { return zero_ ? parameters_.padded_size() / groups_.data->size() : parameters_.padded_size(); }
int64_t Optimizer::shard_begin() const { return zero_ ? groups_.data->rank() * shard_size() : 0; }

void Optimizer::synchronize_gradients() {
  ScopedTimer timer(timers_, Category::dp_comm);
  // With sequence parallelism each tensor rank saw only its rows: the gradients of the
  // replicated norms and row-parallel biases are partial sums (the positions' are not: they are
  // computed from the gathered rows).
  if (plan_.parallel.sequence_parallel && groups_.tensor->size() > 1)
    for (Parameter& p : parameters_.all())
      if (p.sharding == Sharding::replicated && p.name != "wpe.weight")
        groups_.tensor->all_reduce(p.grad.data<float>(), size_t(p.grad.numel()), ReduceOp::sum);
  // The tied embedding lives on the first and the last stage; both copies get the sum. (Untied,
  // only the first stage holds wte: an all-reduce there alone would wait forever.)
  const bool tied = !plan_.model.untie_embeddings_and_output_weights;
  if (tied && groups_.embedding && groups_.embedding->size() > 1 && parameters_.contains("wte.weight")) {
    Tensor& g = parameters_["wte.weight"].grad;
    groups_.embedding->all_reduce(g.data<float>(), size_t(g.numel()), ReduceOp::sum);
  }
  Tensor& flat = parameters_.flat_grads();
  if (groups_.data->size() == 1) return;
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
  Tensor grads = owned_gradients();
  return weighted_sum_of_squares(grads.data<float>(), parameters_.norm_weights().data() + shard_begin(), shard_size());
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
  for (const Parameter& p : parameters_.all()) {
    const int64_t lo = std::max(begin, p.offset), hi = std::min(begin + size, p.offset + p.value.numel());
    if (lo >= hi) continue;
    Tensor value = values.rows(lo, hi), grad = grads.rows(lo - begin, hi - begin);
    Tensor m = m_.rows(lo - begin, hi - begin), v = v_.rows(lo - begin, hi - begin);
    kernels_.adamw(value, grad, m, v, float(lr), float(t.adam_beta1), float(t.adam_beta2), float(t.adam_eps),
                   takes_weight_decay(p.kind) ? float(t.weight_decay) : 0.0f, step);
  }
  if (zero_) {
    ScopedTimer gather(timers_, Category::dp_comm);
    groups_.data->all_gather(values.data<float>() + begin, values.data<float>(), size_t(size));  // in place
  }
}

}  // namespace loom::exec
