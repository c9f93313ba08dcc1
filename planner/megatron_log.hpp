#pragma once
// Megatron-LM's training log (its stdout, as `torchrun … pretrain_gpt.py … | tee train.log`
// keeps it) read into numbers: the iteration lines, the per-rank memory reports, the timer
// tables, and the arguments block. The formats, and the Megatron-LM versions that print them:
//
// Iteration lines, training_log() in megatron/training/training.py (core_r0.6 … core_r0.13 and
// main, 2024-2025), one per --log-interval, printed by the last rank:
//   " [2025-04-13 23:41:12] iteration       10/    1000 | consumed samples:          160 |
//    elapsed time per iteration (ms): 1147.6 | throughput per GPU (TFLOP/s/GPU): 402.1 |
//    learning rate: 3.000000E-04 | global batch size:    16 | lm loss: 7.123456E+00 |
//    loss scale: 1.0 | grad norm: 1.234 | number of skipped iterations:   0 |
//    number of nan iterations:   0 |"   (one line)
//   The timestamp, throughput (--log-throughput), grad norm, params norm, num zeros are optional;
//   learning rate is {:.3E} in older releases and {:.6E} in newer ones. The loss keys are
//   "lm loss" (GPT), plus any others a model logs; each is the mean over the interval's
//   iterations that were not skipped, and is absent in releases before core_r0.6 when that mean
//   is 0 (all skipped).
// Megatron-LM v2.x (megatron/training.py, 2021-2023): the same fields without the timestamp and
//   throughput. Megatron-LM v1.x (2019-2020): "learning rate 1.000E-04 | lm loss 7.0E+00 |
//   loss scale 1.0 |", keys without colons, and no skipped/nan counts.
// Memory, report_memory() in megatron/training/utils.py (v2.x on), printed once after the first
//   interval by every rank of data-parallel rank 0, values in MiB ("MB" = 1024 × 1024 bytes):
//   "[Rank 3] (after 10 iterations) memory (MB) | allocated: 1464.33 | max allocated: 1464.34 |
//    reserved: 1576.0 | max reserved: 1576.0"  (newest: "| device usage: …" appended)
//   v1.x: "after 10 iterations memory (MB) | allocated: … | max allocated: … | cached: … |
//   max cached: …", rank 0 only.
// Timers, with --timing-log-level 1 or 2: Timers.log() in megatron/core/timers.py (core_r0.x),
//   normalised by log-interval, so milliseconds per iteration, after each iteration line:
//   "(min, max) time across ranks (ms):" then "    forward-compute ....: (401.22, 410.87)" lines
//   (--timing-log-option minmax, the default); "max time across ranks (ms):" then
//   "    forward-compute ....: 410.87" (max); "times across ranks (ms):" then "  forward-compute:"
//   and "     rank  0: 401.22" lines (all). v1.x/v2.x print one line:
//   "time (ms) | forward-compute: 53.79 | forward-recv: 38.38 | …".
// Arguments, _print_args() in megatron/training/arguments.py (all versions), on rank 0 at start:
//   "------------------------ arguments ------------------------", then sorted
//   "  num_layers ...................................... 24" lines, then
//   "-------------------- end of arguments ---------------------".
// The tokenizer's padding, _vocab_size_with_padding() in megatron/training/tokenizer:
//   " > padded vocab (size: 50257) with 175 dummy tokens (new size: 50432)".

#include "planner/log_text.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace loom::plan {

// A timer's time per iteration over the ranks that ran it, in seconds.
struct TimerSeconds {
  double min_s = 0;
  double max_s = 0;
};

// One iteration line: the averages over the log interval that ends at `iteration`.
struct MegatronIteration {
  int64_t line = 0;
  int64_t iteration = 0;
  std::optional<int64_t> train_iterations;  // the M of "N/M"; absent for "N/infinity"
  double elapsed_s_per_iteration = 0;
  std::optional<double> throughput_tflops_per_gpu;
  std::optional<double> learning_rate;
  std::optional<int64_t> global_batch_size;
  std::optional<int64_t> consumed_samples;
  std::optional<double> lm_loss;  // "lm loss", else "loss"
  std::optional<double> loss_scale;
  std::optional<double> grad_norm;
  int64_t skipped_iterations = 0;
  int64_t nan_iterations = 0;
  std::map<std::string, TimerSeconds> timers;  // the timer table printed after this line, if any
};

struct MegatronMemoryReport {
  int64_t line = 0;
  int64_t rank = 0;
  std::optional<int64_t> after_iterations;
  int64_t allocated_bytes = 0;
  int64_t max_allocated_bytes = 0;
  std::optional<int64_t> reserved_bytes;
  std::optional<int64_t> max_reserved_bytes;
};

struct MegatronLog {
  std::string file_name;
  // Which of the formats above: "megatron-core" (timestamped lines, throughput or the (min, max)
  // timer table), "megatron-lm-v2" or "megatron-lm-v1".
  std::string variant;
  std::string timer_format;  // "minmax", "max", "all", "one-line" or "" (none)
  std::map<std::string, std::string> arguments;  // as printed: names with underscores, "None", "True"
  std::optional<int64_t> tokenizer_vocab_size;    // from the "> padded vocab" line
  std::optional<int64_t> padded_vocab_size;
  std::vector<MegatronIteration> iterations;
  std::vector<MegatronMemoryReport> memory;
  int64_t ignored_lines = 0;  // an unfinished last line (the log was cut mid-line)
};

// Parses a log; InvalidInput "train.log:57: expected a number after 'elapsed time per iteration
// (ms):', found 'abc'" for a broken iteration, memory or timer line, and for a log without a
// single iteration line. Lines of other kinds (warnings, other ranks' output) are passed over.
MegatronLog parse_megatron_log(const LogText& log);
MegatronLog read_megatron_log(const std::string& path);

}  // namespace loom::plan
