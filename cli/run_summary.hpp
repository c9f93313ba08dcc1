#pragma once
// What `loom compare` and `loom bench fidelity` read from a stored run and set beside its
// prediction: the steady-state step time and the memory the executor's allocator can see.

#include "core/store.hpp"
#include "simulator/prediction.hpp"

#include <vector>

namespace loom::cli {

// core::warmup_steps of a stored run's steps.
int64_t warmup_steps_of(const std::vector<core::StepRow>& steps);
// Mean step time over the steps after the warm-up.
double steady_step_time_s(const std::vector<core::StepRow>& steps);

// The prediction's memory for a pipeline stage as the executor counts it: tensors only (the
// executor's allocator high-water mark has no CUDA context or framework reserve).
double predicted_tensor_bytes(const sim::Prediction& prediction, int64_t stage);
// The pipeline stage a rank's statistics belong to.
int64_t pipeline_rank_of(const core::RankStatRow& rank);

// Signed relative error in %, (predicted − measured) / measured.
double error_percent(double predicted, double measured);

}  // namespace loom::cli
