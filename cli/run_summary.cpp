#include "cli/run_summary.hpp"

#include "core/train_spec.hpp"

#include <algorithm>

namespace loom::cli {

int64_t warmup_steps_of(const std::vector<core::StepRow>& steps) {
  return core::warmup_steps(int64_t(steps.size()));
}

double steady_step_time_s(const std::vector<core::StepRow>& steps) {
  const size_t first = size_t(warmup_steps_of(steps));
  double total = 0;
  for (size_t i = first; i < steps.size(); ++i) total += steps[i].step_time_s;
  return steps.size() > first ? total / double(steps.size() - first) : 0.0;
}

double predicted_tensor_bytes(const sim::Prediction& prediction, int64_t stage) {
  const sim::StageMemory& memory = prediction.memory.at(size_t(stage));
  return double(memory.total_bytes() - memory.other_bytes);
}

int64_t pipeline_rank_of(const core::RankStatRow& rank) {
  return core::Json::parse(rank.stats_json).value("pipeline_rank", int64_t(0));
}

double error_percent(double predicted, double measured) {
  return measured != 0 ? 100.0 * (predicted - measured) / measured : 0.0;
}

}  // namespace loom::cli
