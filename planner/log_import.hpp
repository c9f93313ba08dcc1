#pragma once
// Training logs of other frameworks stored as measured runs: parse (megatron_log, llmc_log), find
// the plan (given, or rebuilt from Megatron's arguments block), and write plan, prediction, run,
// steps and per-rank statistics to the store in one transaction. The CLI (`loom import`) and the
// GUI's Runs view both call these and only format the result.
//
// What a step is: one logged line. For Megatron that is one --log-interval, whose numbers are
// averages over its iterations; the step is stored under the iteration number that ends it. Its
// loss is stored as NaN (not a good step: `loom compare`, calibration and plots leave it out)
// when Megatron counted a NaN iteration in the interval, when every iteration of the interval was
// skipped (fp16 loss-scale search, or a gradient overflow), or when the line has no loss. Its
// time is kept: the iterations took it. For llm.c a step is one step; a step whose update llm.c
// skipped (its z-score guard) is stored with a NaN loss the same way.

#include "core/store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom::plan {

// The profile an imported run is predicted with when neither --profile nor a plan names one.
inline constexpr const char* kDefaultImportProfile = "h100-80gb-dgx";

struct LogImportOptions {
  std::string plan_path;     // plan.json; empty: rebuilt from Megatron's arguments (llm.c needs one)
  std::string profile;       // empty: the plan's profile, else kDefaultImportProfile
  int64_t devices_per_node = 8;  // for a plan rebuilt from the arguments
};

struct LogImportResult {
  int64_t run_id = 0;
  int64_t plan_id = 0;
  std::string source;   // "megatron" or "llmc"
  std::string variant;  // the log format detected (megatron_log.hpp, llmc_log.hpp)
  std::string file_name;
  std::string profile_name;
  bool plan_from_arguments = false;
  int64_t steps = 0;
  int64_t first_iteration = 0;
  int64_t last_iteration = 0;
  std::optional<int64_t> total_iterations;
  int64_t steps_without_loss = 0;  // skipped or NaN intervals, stored with a NaN loss
  double steady_step_time_s = 0;   // mean over the steps after the warm-up
  std::optional<int64_t> peak_memory_bytes;  // the largest max allocated over the ranks
  int64_t ranks_with_memory = 0;
  std::vector<std::string> measured_categories;  // "forward_s", … from the timer table
  int64_t ignored_lines = 0;
  core::RunStatus status = core::RunStatus::completed;
  std::string reason;
};

LogImportResult import_megatron_log(core::Store& store, const std::string& path, const LogImportOptions& options);
LogImportResult import_llmc_log(core::Store& store, const std::string& path, const LogImportOptions& options);

struct DetectedLog {
  std::string source;       // "megatron" or "llmc"
  bool needs_plan = false;  // llm.c, or Megatron without an arguments block
};
// Which framework wrote the log: Megatron-LM's iteration lines or llm.c's step lines; else
// InvalidInput with both parsers' complaints. For the GUI, which takes any log file.
DetectedLog detect_log(const std::string& path);

}  // namespace loom::plan
