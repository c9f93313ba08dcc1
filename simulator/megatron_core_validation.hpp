#pragma once
// Checks the simulator against published runs of current Megatron-Core (NeMo) pre-training on
// H100: flash attention, sequence parallelism, the distributed optimizer and every overlap on.
// The rows and their sources are in simulator/data/megatron_core_h100.csv and
// megatron_core_h100_sources.md; only rows Loom can express are kept (bf16, no context
// parallelism, dense models).

#include "core/plan.hpp"
#include "core/profile.hpp"
#include "simulator/prediction.hpp"

#include <string>
#include <vector>

namespace loom::sim {

struct CurrentMegatronRun {
  std::string source_id;  // the source's id in megatron_core_h100_sources.md
  std::string model;      // Loom preset name
  int64_t seq_length = 0, devices = 0, global_batch_size = 0, micro_batch_size = 0;
  int64_t tensor_parallel = 0, pipeline_parallel = 0, virtual_stages = 1;
  double step_time_s = 0;  // published, seconds per step
  std::string framework;   // the container the run used
  double tokens_per_s() const { return double(global_batch_size * seq_length) / step_time_s; }
};

// The published rows, in the order of the CSV.
const std::vector<CurrentMegatronRun>& megatron_core_h100_runs();

// The plan a row describes, with the settings its recipe states: bf16, flash attention, sequence
// parallelism, TP communication overlap, the distributed optimizer with overlapped gradient
// reduce and parameter gather in 220 MB buckets, no recompute.
core::Plan plan_of(const CurrentMegatronRun& run, const core::Profile& profile);

struct CurrentMegatronRow {
  CurrentMegatronRun published;
  core::Plan plan;
  Prediction prediction;
  double error_fraction = 0;  // (predicted − published) / published tokens/s
};

struct CurrentMegatronReport {
  std::vector<CurrentMegatronRow> rows;
  double mean_absolute_percentage_error = 0;  // in percent
};

CurrentMegatronReport validate_megatron_core_h100(const core::Profile& profile);

}  // namespace loom::sim
