#pragma once
// Calibration: fits a profile's free efficiency parameters to measured runs (`loom calibrate`,
// issue 21), so that predictions for a cluster are about that cluster.
//
// Two independent least-squares fits (Levenberg–Marquardt, bounded, finite-difference Jacobians):
//  - step time: residual log(predicted) − log(measured) per run, over the parameters that time
//    operations (measured-table scales, GEMM ceiling and half-saturation, memory-bandwidth and
//    flash fractions, per-link bus-bandwidth fractions and latencies, overlap factors);
//  - memory: residual (predicted − measured) / measured of the device-level peak (allocator
//    reserve included), over the per-device runtime reserve.
// A parameter is fitted only if the runs determine it: their residuals must move with it, and not
// (nearly) as those of a parameter already chosen (greedy, in the fixed order of
// calibration_parameter_names), and no block fits more parameters than it has residuals. Every
// other parameter keeps its base value, with the reason.
//
// Parameters are bounded where they are physically sensible: fractions of a datasheet peak never
// above 1, table-time scales in [0.25, 4] (core/profile.hpp, plausible::kTableTimeScale).

#include "core/plan.hpp"
#include "core/profile.hpp"
#include "core/store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom::sim {

// What one stored run measured, as calibration uses it.
struct MeasuredRun {
  int64_t run_id = 0;
  core::Plan plan;
  double step_time_s = 0;                   // mean steady step (after the warm-up)
  std::optional<double> peak_tensor_bytes;  // max over ranks: the executor's tensors only
  // Max over ranks of the device-level peak, allocator reserve included (Megatron's max reserved;
  // rank stats_json "max_reserved_bytes"). Only these determine the runtime reserve.
  std::optional<double> peak_device_bytes;
  std::string label;      // "run 3 (gpt2 tp2 pp1 dp2)"
  std::string plan_name;  // the stored plan's name
  std::string source = "loom";  // who measured it: loom, megatron, llmc
};

// The runs under `run_ids`, in that order. Throws InvalidInput naming the id for a run that does
// not exist, is not completed, or has no steps.
std::vector<MeasuredRun> measured_runs(core::Store& store, const std::vector<int64_t>& run_ids);

struct CalibrationOptions {
  // Names from calibration_parameter_names; empty: every free parameter the runs determine. A
  // named parameter the runs cannot determine is refused (InvalidInput) with the reason.
  std::vector<std::string> parameters;
  // Runs left out of the fit to measure its error honestly: 0 ≤ holdout ≤ runs − 2. The held-out
  // runs are spread over the list: run i (from 0) of n for i = ⌊(2j + 1)·n / (2·holdout)⌋,
  // j = 0 … holdout − 1 (the middle of each of holdout equal slices).
  int64_t holdout = 0;
};

struct ParameterFit {
  std::string name, unit;
  double before = 0, after = 0;
  std::optional<double> uncertainty;  // 1σ, in the parameter's unit; absent when not determined or n = p
  bool determined = false;
  std::string reason;  // why not determined, or why there is no uncertainty
  bool at_bound = false;  // the fit ended on one of the parameter's bounds
};

struct RunFit {
  int64_t run_id = 0;
  std::string label;
  bool held_out = false;
  double measured_step_s = 0, predicted_before_s = 0, predicted_after_s = 0;
  // Device-level peaks where the run measured one, else tensor-only peaks.
  std::optional<double> measured_memory_bytes, predicted_memory_before_bytes, predicted_memory_after_bytes;
  bool device_level_memory = false;
};

struct CalibrationResult {
  core::Profile profile;  // provenance "calibrated", with its calibration section
  std::vector<ParameterFit> parameters;  // every free parameter of the base profile, in order
  std::vector<RunFit> runs;              // in the order given
  // Mean absolute % step-time error over the fitted runs, and over the held-out ones.
  double fit_step_error_before_percent = 0, fit_step_error_after_percent = 0;
  std::optional<double> holdout_step_error_before_percent, holdout_step_error_after_percent;
};

// Throws InvalidInput for no runs, a bad holdout, an unknown or undetermined named parameter, or
// runs that determine no parameter at all (with each parameter's reason).
CalibrationResult calibrate(const core::Profile& base, const std::vector<MeasuredRun>& runs,
                            const CalibrationOptions& options);

// The free parameters of `profile`, in the order the greedy selection considers them.
std::vector<std::string> calibration_parameter_names(const core::Profile& profile);

// The indices calibrate leaves out for `holdout` of `runs` runs (CalibrationOptions::holdout).
std::vector<size_t> held_out_indices(size_t runs, int64_t holdout);

}  // namespace loom::sim
