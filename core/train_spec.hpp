#pragma once
// How the model is trained: batch, precision, AdamW and its learning-rate schedule.

#include "core/enums.hpp"

#include <cstdint>

namespace loom::core {

struct TrainSpec {
  int64_t global_batch_size = 0;  // sequences per optimizer step
  DType dtype = DType::bf16;
  // AdamW with linear warm-up then cosine decay from lr to min-lr over train-iters.
  double lr = 6.0e-4;
  double min_lr = 6.0e-5;
  int64_t lr_warmup_iters = 0;
  int64_t train_iters = 1;
  double weight_decay = 0.1;
  double clip_grad = 1.0;  // global gradient-norm clip; 0 turns clipping off
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.95;
  double adam_eps = 1.0e-8;
  int64_t seed = 1234;

  void validate() const;

  bool operator==(const TrainSpec&) const = default;
};

// Steps at the start of a run of `trained_steps` left out of its steady-state timing (allocator,
// caches and page faults settle): 2, or half of a shorter run. The executor's per-category
// timers and `loom compare` both count from after them.
inline int64_t warmup_steps(int64_t trained_steps) { return trained_steps < 4 ? trained_steps / 2 : 2; }

}  // namespace loom::core
