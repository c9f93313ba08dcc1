#include "core/train_spec.hpp"

#include "core/error.hpp"

#include <cmath>

namespace loom::core {

void TrainSpec::validate() const {
  if (global_batch_size <= 0)
    throw InvalidInput("global-batch-size={} must be a positive integer", global_batch_size);
  if (global_batch_size > (int64_t(1) << 24))
    throw InvalidInput("global-batch-size={} is larger than the supported {}", global_batch_size, 1 << 24);
  if (!(std::isfinite(lr) && lr > 0)) throw InvalidInput("lr={} must be a positive number", lr);
  if (!(std::isfinite(min_lr) && min_lr >= 0 && min_lr <= lr))
    throw InvalidInput("min-lr={} must lie between 0 and lr={}", min_lr, lr);
  if (train_iters <= 0) throw InvalidInput("train-iters={} must be a positive integer", train_iters);
  if (lr_warmup_iters < 0 || lr_warmup_iters > train_iters)
    throw InvalidInput("lr-warmup-iters={} must lie between 0 and train-iters={}", lr_warmup_iters,
                       train_iters);
  if (!(std::isfinite(weight_decay) && weight_decay >= 0))
    throw InvalidInput("weight-decay={} must be a non-negative number", weight_decay);
  if (!(std::isfinite(clip_grad) && clip_grad >= 0))
    throw InvalidInput("clip-grad={} must be a non-negative number (0 turns clipping off)", clip_grad);
  if (!(adam_beta1 >= 0 && adam_beta1 < 1))
    throw InvalidInput("adam-beta1={} must lie in [0, 1)", adam_beta1);
  if (!(adam_beta2 >= 0 && adam_beta2 < 1))
    throw InvalidInput("adam-beta2={} must lie in [0, 1)", adam_beta2);
  if (!(std::isfinite(adam_eps) && adam_eps > 0))
    throw InvalidInput("adam-eps={} must be a positive number", adam_eps);
  if (seed < 0) throw InvalidInput("seed={} must be a non-negative integer", seed);
}

}  // namespace loom::core
