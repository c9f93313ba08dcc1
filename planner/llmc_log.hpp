#pragma once
// llm.c's training output (karpathy/llm.c, stdout of train_gpt2.cu / train_gpt2.c) read into
// numbers. One line per optimizer step, in the formats llm.c has printed:
//
//   train_gpt2.cu, June 2024 on (printf0 after the step, with the MFU estimate):
//     "step %4d/%d | loss %7.6f (%+.2fz)| norm %6.4f (%+.2fz)| lr %.2e | %.2f ms | %.1f%% bf16 MFU | %.0f tok/s"
//   train_gpt2.cu, May 2024 (the outlier detector's z-scores, before the MFU field):
//     "step %4d/%d | loss %7.6f (%+.2fz)| norm %6.4f (%+.2fz)| lr %.2e | %.2f ms | %.0f tok/s"
//   train_gpt2.cu, April-May 2024:
//     "step %4d/%d: train loss %f (%f ms, %d tok/s)"
//   train_gpt2.c (the CPU reference) and the first train_gpt2.cu, steps counted from 0:
//     "step %d: train loss %f (took %f ms)"
// Steps are numbered from 1 in what is returned (the first two formats print step + 1 already).
// "skipping update due to loss z-score of %f" / "… grad z-score of %f" before a step line mark
// that step as not updated. The parameter table train_gpt2.cu prints at start
// ("| micro batch size B    | 4      |") is kept as a string map, so the plan can be checked
// against it.

#include "planner/log_text.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace loom::plan {

struct LlmcStep {
  int64_t line = 0;
  int64_t step = 0;  // from 1
  std::optional<int64_t> total_steps;
  double loss = 0;  // NaN when llm.c printed nan
  std::optional<double> grad_norm;
  std::optional<double> learning_rate;
  double step_time_s = 0;
  std::optional<double> mfu_percent;
  std::optional<double> tokens_per_s;  // as printed: an EMA in the newer formats
  bool update_skipped = false;
};

struct LlmcLog {
  std::string file_name;
  // "llmc-cu-mfu", "llmc-cu-zscore", "llmc-cu-early" or "llmc-c" (the formats above, in order).
  std::string variant;
  std::map<std::string, std::string> parameters;  // "micro batch size B" -> "4"
  std::vector<LlmcStep> steps;
  int64_t ignored_lines = 0;  // an unfinished last line
};

// InvalidInput naming the file and line for a broken step line, and for a log without any.
LlmcLog parse_llmc_log(const LogText& log);
LlmcLog read_llmc_log(const std::string& path);

}  // namespace loom::plan
