#include "core/train_spec.hpp"

#include "core/error.hpp"
#include "core/limits.hpp"

#include <cmath>

namespace loom::core {
namespace {

// A finite number in [least, most] (`least` itself excluded when `open_below`). JSON has no NaN
// or infinity, but 1e308 parses, and so does anything a program sets.
void require_number(std::string_view field, double value, double least, bool open_below, double most,
                    std::string_view rule) {
  const bool above_least = open_below ? value > least : value >= least;
  if (!(std::isfinite(value) && above_least && value <= most))
    throw InvalidInput("{}={} must be {}, at most {}", field, value, rule, most);
}

}  // namespace

void TrainSpec::validate() const {
  if (global_batch_size <= 0)
    throw InvalidInput("global-batch-size={} must be a positive integer", global_batch_size);
  if (global_batch_size > limits::kMaxGlobalBatch)
    throw InvalidInput("global-batch-size={} is larger than the supported {}", global_batch_size,
                       limits::kMaxGlobalBatch);
  require_number("lr", lr, 0, true, limits::kMaxLearningRate, "a positive number");
  if (!(std::isfinite(min_lr) && min_lr >= 0 && min_lr <= lr))
    throw InvalidInput("min-lr={} must lie between 0 and lr={}", min_lr, lr);
  if (train_iters <= 0) throw InvalidInput("train-iters={} must be a positive integer", train_iters);
  if (train_iters > limits::kMaxTrainIters)
    throw InvalidInput("train-iters={} is larger than the supported {}", train_iters, limits::kMaxTrainIters);
  if (lr_warmup_iters < 0 || lr_warmup_iters > train_iters)
    throw InvalidInput("lr-warmup-iters={} must lie between 0 and train-iters={}", lr_warmup_iters,
                       train_iters);
  require_number("weight-decay", weight_decay, 0, false, limits::kMaxWeightDecay, "a non-negative number");
  require_number("clip-grad", clip_grad, 0, false, limits::kMaxClipGrad,
                 "a non-negative number (0 turns clipping off)");
  if (!(adam_beta1 >= 0 && adam_beta1 < 1))
    throw InvalidInput("adam-beta1={} must lie in [0, 1)", adam_beta1);
  if (!(adam_beta2 >= 0 && adam_beta2 < 1))
    throw InvalidInput("adam-beta2={} must lie in [0, 1)", adam_beta2);
  require_number("adam-eps", adam_eps, 0, true, limits::kMaxAdamEps, "a positive number");
  if (seed < 0) throw InvalidInput("seed={} must be a non-negative integer", seed);
}

}  // namespace loom::core
