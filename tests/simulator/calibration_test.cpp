// Calibration recovers known parameters: "measured" runs are predictions of a perturbed profile
// with a few per cent of seeded noise; calibrating the unperturbed profile to them must find the
// perturbation within its reported uncertainty, report what the runs cannot see as such, and
// lower the error on held-out runs.

#include "simulator/calibration.hpp"

#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "simulator/memory_model.hpp"
#include "simulator/prediction.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace loom::sim {
namespace {

using ::testing::HasSubstr;

struct Layout {
  int64_t tp, pp, dp, nodes, devices_per_node, micro_batch = 1;
  bool overlap_grad_reduce = false;
};

core::Plan gpu_plan(const Layout& l) {
  core::Plan plan;
  plan.model = core::resolve_model("gpt2-350m");
  plan.training.global_batch_size = 32;
  plan.training.dtype = core::DType::bf16;
  plan.cluster.nodes = l.nodes;
  plan.cluster.devices_per_node = l.devices_per_node;
  plan.cluster.profile = "h100-80gb-dgx";
  plan.parallel.tensor_parallel = l.tp;
  plan.parallel.pipeline_parallel = l.pp;
  plan.parallel.data_parallel = l.dp;
  plan.parallel.micro_batch_size = l.micro_batch;
  plan.parallel.overlap_grad_reduce = l.overlap_grad_reduce;
  plan.validate();
  return plan;
}

core::Plan cpu_plan(const Layout& l) {
  core::Plan plan;
  plan.model = core::resolve_model("loom-tiny");
  plan.training.global_batch_size = 8;
  plan.training.dtype = core::DType::fp32;
  plan.cluster.nodes = l.nodes;
  plan.cluster.devices_per_node = l.devices_per_node;
  plan.cluster.profile = "cpu-epyc-2core-vm";
  plan.parallel.tensor_parallel = l.tp;
  plan.parallel.pipeline_parallel = l.pp;
  plan.parallel.data_parallel = l.dp;
  plan.parallel.micro_batch_size = l.micro_batch;
  plan.validate();
  return plan;
}

// Single-node and multi-node layouts of GPT-2 350M on DGX H100s.
std::vector<core::Plan> gpu_plans(bool multi_node = true) {
  std::vector<Layout> layouts = {{1, 1, 1, 1, 1},    {2, 1, 1, 1, 2, 2}, {4, 2, 1, 1, 8},
                                 {8, 1, 1, 1, 8, 4}, {2, 2, 2, 1, 8},    {1, 1, 8, 1, 8, 2}};
  if (multi_node) {
    layouts.insert(layouts.end(), {{8, 1, 2, 2, 8}, {4, 2, 4, 4, 8}, {8, 2, 2, 4, 8, 1, true}, {4, 1, 4, 2, 8, 2}});
  }
  std::vector<core::Plan> plans;
  for (const Layout& l : layouts) plans.push_back(gpu_plan(l));
  return plans;
}

std::vector<core::Plan> cpu_plans() {
  std::vector<core::Plan> plans;
  for (const Layout& l : std::vector<Layout>{{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 4}, {2, 1, 1, 1, 2, 2},
                                              {1, 2, 1, 1, 2, 1}, {1, 1, 2, 1, 2, 2}, {2, 1, 1, 1, 2, 4},
                                              {1, 2, 1, 1, 2, 4}, {2, 2, 1, 1, 4, 1}, {1, 1, 4, 1, 4, 2},
                                              {2, 1, 2, 1, 4, 1}, {4, 1, 1, 1, 4, 2}})
    plans.push_back(cpu_plan(l));
  return plans;
}

// The plans' step times on `truth`, times 1 + noise (uniform in ±noise, seeded), with device
// peaks where `reserve_bytes` is given.
std::vector<MeasuredRun> measure(const std::vector<core::Plan>& plans, const core::Profile& truth, double noise,
                                 std::optional<int64_t> reserve_bytes = std::nullopt) {
  std::mt19937 random(21);
  std::uniform_real_distribution<double> jitter(-noise, noise);
  std::vector<MeasuredRun> runs;
  for (size_t i = 0; i < plans.size(); ++i) {
    MeasuredRun run;
    run.run_id = int64_t(i) + 1;
    run.plan = plans[i];
    run.plan_name = fmt::format("plan {}", i + 1);
    run.label = fmt::format("run {}", i + 1);
    SimulationOptions options;
    options.record_timeline = false;
    const Prediction p = simulate(plans[i], truth, options);
    run.step_time_s = p.step_time_s * (1.0 + jitter(random));
    if (reserve_bytes) {
      core::Profile with_reserve = truth;
      with_reserve.device.runtime_reserve_bytes = *reserve_bytes;
      run.peak_device_bytes = double(simulate(plans[i], with_reserve, options).peak_memory_bytes) * (1.0 + jitter(random));
    }
    runs.push_back(run);
  }
  return runs;
}

const ParameterFit& fit_of(const CalibrationResult& result, const std::string& name) {
  for (const ParameterFit& fit : result.parameters)
    if (fit.name == name) return fit;
  throw std::runtime_error("no parameter " + name);
}

// |after − truth| within `sigmas` reported uncertainties, or within `relative` of the truth.
void expect_recovered(const ParameterFit& fit, double truth, double sigmas = 3.0, double relative = 0.03) {
  ASSERT_TRUE(fit.determined) << fit.name << ": " << fit.reason;
  ASSERT_TRUE(fit.uncertainty.has_value()) << fit.name;
  EXPECT_LE(std::abs(fit.after - truth), std::max(sigmas * *fit.uncertainty, relative * truth))
      << fit.name << ": fitted " << fit.after << " ± " << *fit.uncertainty << ", truth " << truth;
}

core::Profile h100() { return core::resolve_profile("h100-80gb-dgx"); }
core::Profile perturbed_h100() {
  core::Profile truth = h100();
  truth.efficiency.gemm_max_fraction *= 0.8;
  for (core::LinkSpec& link : truth.links)
    if (link.level == "inter-node") link.bus_bandwidth_fraction *= 0.6;
  return truth;
}

TEST(CalibrationTest, RecoversNamedDatasheetParametersWithinTheirUncertainty) {
  const core::Profile base = h100(), truth = perturbed_h100();
  const std::vector<MeasuredRun> runs = measure(gpu_plans(), truth, 0.01);
  CalibrationOptions options;
  options.parameters = {"efficiency.gemm_max_fraction", "links.inter-node.bus_bandwidth_fraction"};
  const CalibrationResult result = calibrate(base, runs, options);
  expect_recovered(fit_of(result, "efficiency.gemm_max_fraction"), truth.efficiency.gemm_max_fraction);
  expect_recovered(fit_of(result, "links.inter-node.bus_bandwidth_fraction"),
                   truth.link("inter-node")->bus_bandwidth_fraction);
  EXPECT_DOUBLE_EQ(fit_of(result, "efficiency.gemm_max_fraction").before, base.efficiency.gemm_max_fraction);
  // Parameters not asked for keep their base values.
  EXPECT_DOUBLE_EQ(result.profile.efficiency.memory_bandwidth_fraction, base.efficiency.memory_bandwidth_fraction);
  EXPECT_LT(result.fit_step_error_after_percent, 1.5);
  EXPECT_GT(result.fit_step_error_before_percent, 5.0);
  EXPECT_EQ(result.profile.provenance, "calibrated");
  ASSERT_TRUE(result.profile.calibration.has_value());
  EXPECT_EQ(result.profile.calibration->base_profile, base.name);
  EXPECT_EQ(result.profile.calibration->fitted_runs.size(), runs.size());
}

TEST(CalibrationTest, RecoversDatasheetParametersUnasked) {
  const core::Profile base = h100(), truth = perturbed_h100();
  const CalibrationResult result = calibrate(base, measure(gpu_plans(), truth, 0.01), {});
  expect_recovered(fit_of(result, "efficiency.gemm_max_fraction"), truth.efficiency.gemm_max_fraction, 4.0, 0.05);
  // Whatever else the runs determined stays within its uncertainty of the (unperturbed) truth.
  EXPECT_LT(result.fit_step_error_after_percent, 1.5);
  for (const ParameterFit& fit : result.parameters) {
    if (!fit.determined || fit.name == "efficiency.gemm_max_fraction") continue;
    if (fit.name == "links.inter-node.bus_bandwidth_fraction") {
      expect_recovered(fit, truth.link("inter-node")->bus_bandwidth_fraction, 4.0, 0.05);
      continue;
    }
    EXPECT_LE(std::abs(fit.after - fit.before), std::max(4.0 * fit.uncertainty.value_or(0), 0.05 * fit.before))
        << fit.name << " moved from " << fit.before << " to " << fit.after << " ± " << fit.uncertainty.value_or(0);
  }
}

TEST(CalibrationTest, RecoversMeasuredTableScalesOfTheCpuProfile) {
  const core::Profile base = core::resolve_profile("cpu-epyc-2core-vm");
  core::Profile truth = base;
  truth.calibration.emplace();
  truth.calibration->table_time_scales.gemm = 1.3;
  truth.calibration->table_time_scales.collectives_by_level["intra-node"] = 1.5;
  const CalibrationResult result = calibrate(base, measure(cpu_plans(), truth, 0.01), {});
  expect_recovered(fit_of(result, "table_time_scales.gemm"), 1.3, 3.0, 0.05);
  expect_recovered(fit_of(result, "table_time_scales.collectives.intra-node"), 1.5, 4.0, 0.1);
  const ParameterFit& gemm_fraction = fit_of(result, "efficiency.gemm_max_fraction");
  EXPECT_FALSE(gemm_fraction.determined);
  EXPECT_THAT(gemm_fraction.reason, HasSubstr("GEMM table covers every GEMM"));
  EXPECT_LT(result.fit_step_error_after_percent, 2.0);
  // The tables stay as measured; the scale lives in the calibration section.
  EXPECT_EQ(result.profile.tables.gemm.size(), base.tables.gemm.size());
  EXPECT_DOUBLE_EQ(result.profile.tables.gemm.front().time_s, base.tables.gemm.front().time_s);
  EXPECT_NEAR(result.profile.calibration->table_time_scales.gemm, fit_of(result, "table_time_scales.gemm").after, 1e-12);
}

TEST(CalibrationTest, ReportsWhatTheRunsCannotSee) {
  const core::Profile base = h100(), truth = perturbed_h100();
  // One node only: the inter-node link is never used; no device-level memory figure.
  const CalibrationResult result = calibrate(base, measure(gpu_plans(false), truth, 0.01), {});
  for (const char* name : {"links.inter-node.bus_bandwidth_fraction", "links.inter-node.latency_s"}) {
    const ParameterFit& fit = fit_of(result, name);
    EXPECT_FALSE(fit.determined) << name;
    EXPECT_THAT(fit.reason, HasSubstr("no selected run spans more than one node")) << name;
    EXPECT_DOUBLE_EQ(fit.after, fit.before);
  }
  EXPECT_DOUBLE_EQ(result.profile.link("inter-node")->bus_bandwidth_fraction,
                   base.link("inter-node")->bus_bandwidth_fraction);
  const ParameterFit& reserve = fit_of(result, "device.runtime_reserve_bytes");
  EXPECT_FALSE(reserve.determined);
  EXPECT_THAT(reserve.reason, HasSubstr("device-level memory peak"));
  const ParameterFit& hidden = fit_of(result, "overlap.tp_comm_hidden_fraction");
  EXPECT_FALSE(hidden.determined);
  EXPECT_THAT(hidden.reason, HasSubstr("tp-comm-overlap"));

  // Asked for by name, an undetermined parameter is refused with its reason.
  CalibrationOptions options;
  options.parameters = {"efficiency.gemm_max_fraction", "links.inter-node.bus_bandwidth_fraction"};
  try {
    calibrate(base, measure(gpu_plans(false), truth, 0.01), options);
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("links.inter-node.bus_bandwidth_fraction"));
    EXPECT_THAT(e.what(), HasSubstr("no selected run spans more than one node"));
  }
}

TEST(CalibrationTest, RecoversTheRuntimeReserveFromDeviceLevelPeaks) {
  const core::Profile base = h100();
  const int64_t reserve = int64_t(3) << 30;
  CalibrationOptions options;
  options.parameters = {"device.runtime_reserve_bytes"};
  const CalibrationResult result = calibrate(base, measure(gpu_plans(false), base, 0.002, reserve), options);
  const ParameterFit& fit = fit_of(result, "device.runtime_reserve_bytes");
  EXPECT_DOUBLE_EQ(fit.before, double(int64_t(1) << 30));
  expect_recovered(fit, double(reserve), 3.0, 0.05);
  ASSERT_TRUE(result.profile.device.runtime_reserve_bytes.has_value());
  EXPECT_NEAR(double(*result.profile.device.runtime_reserve_bytes), fit.after, 1.0);
  for (const RunFit& run : result.runs) {
    EXPECT_TRUE(run.device_level_memory);
    EXPECT_NEAR(*run.predicted_memory_after_bytes / *run.measured_memory_bytes, 1.0, 0.01) << run.label;
  }
}

TEST(CalibrationTest, HoldoutErrorFallsAfterCalibration) {
  const core::Profile base = h100(), truth = perturbed_h100();
  CalibrationOptions options;
  options.holdout = 3;
  const std::vector<MeasuredRun> runs = measure(gpu_plans(), truth, 0.01);
  const CalibrationResult result = calibrate(base, runs, options);
  ASSERT_TRUE(result.holdout_step_error_before_percent.has_value());
  EXPECT_LT(*result.holdout_step_error_after_percent, 0.5 * *result.holdout_step_error_before_percent);
  // Held out: the middle of three equal slices of ten runs.
  EXPECT_EQ(held_out_indices(10, 3), (std::vector<size_t>{1, 5, 8}));
  int held = 0;
  for (const RunFit& run : result.runs) held += run.held_out;
  EXPECT_EQ(held, 3);
  EXPECT_EQ(result.profile.calibration->fitted_runs.size(), runs.size() - 3);
}

TEST(CalibrationTest, RefusesBadRequests) {
  const core::Profile base = h100();
  const std::vector<MeasuredRun> runs = measure(gpu_plans(false), base, 0.0);
  EXPECT_THROW(calibrate(base, {}, {}), InvalidInput);
  CalibrationOptions too_many;
  too_many.holdout = int64_t(runs.size()) - 1;
  EXPECT_THROW(calibrate(base, runs, too_many), InvalidInput);
  CalibrationOptions unknown;
  unknown.parameters = {"efficiency.warp_drive"};
  try {
    calibrate(base, runs, unknown);
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("efficiency.gemm_max_fraction"));
  }
  std::vector<MeasuredRun> twice = runs;
  twice.push_back(runs.front());
  EXPECT_THROW(calibrate(base, twice, {}), InvalidInput);
  // Only the reserve asked for, and no run measured device memory: nothing to fit.
  CalibrationOptions reserve;
  reserve.parameters = {"device.runtime_reserve_bytes"};
  EXPECT_THROW(calibrate(base, runs, reserve), InvalidInput);
}

TEST(CalibrationTest, TableScalesMultiplyMeasuredTimes) {
  const core::Profile base = core::resolve_profile("cpu-epyc-2core-vm");
  core::Profile scaled = base;
  scaled.calibration.emplace().table_time_scales.gemm = 2.0;
  const CostModel plain(base, core::DType::fp32), doubled(scaled, core::DType::fp32);
  EXPECT_NEAR(doubled.gemm_s(256, 256, 256), 2.0 * plain.gemm_s(256, 256, 256), 1e-15);
  EXPECT_DOUBLE_EQ(doubled.elementwise_s("gelu", 1e6), plain.elementwise_s("gelu", 1e6));
}

TEST(CalibrationTest, RuntimeReserveComesFromTheProfile) {
  core::Profile profile = h100();
  const core::Plan plan = gpu_plan({1, 1, 1, 1, 1});
  SimulationOptions options;
  options.record_timeline = false;
  const Prediction plain = simulate(plan, profile, options);
  EXPECT_EQ(plain.memory.front().other_bytes, int64_t(1) << 30);
  profile.device.runtime_reserve_bytes = int64_t(5) << 30;
  EXPECT_EQ(simulate(plan, profile, options).memory.front().other_bytes, int64_t(5) << 30);
}

}  // namespace
}  // namespace loom::sim
