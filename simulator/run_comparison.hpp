#pragma once
// A measured run beside the simulator's prediction for its plan: step time, throughput, time per
// category of the critical pipeline stage, and peak memory per rank. One computation shared by
// `loom compare`, `loom bench fidelity` and the GUI's Runs view, so they always agree.

#include "core/store.hpp"
#include "simulator/prediction.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom::sim {

// One quantity per step, predicted and measured.
struct ComparisonRow {
  std::string quantity;  // "step time", "tokens/s", "forward", …
  std::string unit;      // "s" or "tokens/s"
  double predicted = 0;
  // Nothing when the run did not measure it: the time per category comes with the per-rank
  // statistics, which a run that was stopped or failed never wrote.
  std::optional<double> measured;
  std::optional<double> error_percent;  // (predicted − measured) / measured, signed
};

// A rank's peak memory as the executor counts it: tensors only.
struct RankMemoryComparison {
  int64_t rank = 0;
  int64_t pipeline_rank = 0;
  double predicted_peak_bytes = 0;
  double measured_peak_bytes = 0;
  double error_percent = 0;
};

struct RunComparison {
  int64_t run_id = 0;
  int64_t attempt = 1;   // the attempt compared (core::RunAttemptRow), against its own plan
  int64_t attempts = 1;  // the run's attempts
  core::RunStatus status = core::RunStatus::running;  // the attempt's
  std::optional<std::string> cause;                   // why the attempt ended, when it failed
  std::string source = "loom";     // who measured it: loom, or megatron / llmc for an imported log
  std::string profile_name;        // the profile the prediction was made with
  int64_t stored_steps = 0;        // steps the attempt recorded
  int64_t warmup_steps = 0;        // excluded from the measured categories
  int64_t measured_steps = 0;      // stored_steps − warmup_steps
  int64_t compared_pipeline_rank = 0;  // the prediction's critical stage, whose categories are compared
  // The prediction's per-device reserve (CUDA context, workspaces) left out of the memory rows:
  // the executor's allocator cannot see it.
  double runtime_reserve_bytes = 0;
  // step time, tokens/s, forward, backward, recompute, tp comm, pp comm + bubble/wait, dp comm, optimizer,
  // dp wait, tp wait (the wait for the slowest rank before a collective: predicted 0)
  std::vector<ComparisonRow> rows;
  std::vector<RankMemoryComparison> ranks;  // by rank; empty without per-rank statistics
  bool has_rank_statistics = false;         // categories and memory were measured
  Prediction prediction;                    // without its timeline
};

// Predicts the plan of one attempt of the run (default: its last) with `profile_override`, or the
// profile the run was stored with (else the plan's), and sets it beside the steps that attempt
// measured (its start_step to its end_step, up to where the next attempt started). A run writes its
// per-rank statistics at its end, so they belong to its last attempt; an earlier attempt, or a run
// without them (still going, stopped or failed), is compared on its step time alone, its categories
// and memory left unmeasured. Throws InvalidInput when there is no such run or attempt, or when the
// attempt has no steps yet.
RunComparison compare_run(core::Store& store, int64_t run_id, const std::string& profile_override = "",
                          std::optional<int64_t> attempt = std::nullopt);

// The steps of `attempt` among the run's steps (ordered by step), given all of the run's attempts.
std::vector<core::StepRow> attempt_steps(const std::vector<core::StepRow>& steps,
                                         const std::vector<core::RunAttemptRow>& attempts, int64_t attempt);

// core::warmup_steps of a stored run's steps.
int64_t warmup_steps_of(const std::vector<core::StepRow>& steps);
// Mean step time over the steps after the warm-up; 0 when there are none.
double steady_step_time_s(const std::vector<core::StepRow>& steps);
// The prediction's memory for a pipeline stage as the executor counts it: tensors only (the
// executor's allocator high-water mark has no CUDA context or framework reserve).
double predicted_tensor_bytes(const Prediction& prediction, int64_t pipeline_rank);
// The pipeline stage a rank's statistics belong to.
int64_t pipeline_rank_of(const core::RankStatRow& rank);
// Signed relative error in %, (predicted − measured) / measured; 0 when nothing was measured.
double error_percent(double predicted, double measured);

}  // namespace loom::sim
