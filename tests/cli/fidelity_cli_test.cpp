// `loom bench fidelity` end to end on one rank: it trains real plans, measures kernels off the
// profile's grid, and reports predicted against measured numbers that all come from runs.

#include "core/json_reader.hpp"
#include "run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <set>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(BenchFidelity, TrainsEveryOneRankPlanAndSetsItBesideItsPrediction) {
  const fs::path work = fs::temp_directory_path() / ("loom-fidelity-test-" + std::to_string(getpid()));
  const LoomResult r = run_loom("bench fidelity --profile cpu-epyc-2core-vm --max-ranks 1 --steps 4 --repeats 2 "
                                "--calibrate --format json --work-dir " + work.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const core::Json out = core::parse_json_text(r.out, "bench output");
  EXPECT_EQ(out.at("format"), "loom-bench-fidelity");
  EXPECT_EQ(out.at("repeats"), 2);
  EXPECT_EQ(out.at("step_time_mape_per_repeat_percent").size(), 2u);
  EXPECT_GE(out.at("load_probe_ranks").get<int64_t>(), 2) << "the load probe runs on every core at once";
  EXPECT_GT(out.at("load_probe_slowdown_median").get<double>(), 0);
  const core::Json& plans = out.at("plans");
  // The single-rank plans: plain, full recompute and flash attention, and the Llama twin's.
  ASSERT_EQ(plans.size(), 4u);
  EXPECT_NE(plans[3].at("plan").get<std::string>().find("llama"), std::string::npos) << plans[3].dump();
  // Each row is wired to its own plan and run: its prediction is what `loom simulate` says of the
  // plan file the bench wrote, and its measurement is what `loom compare` reads from the store for
  // that run. Exact, so that a wiring mistake (ms for s, another run's numbers) fails the test
  // while the machine's speed, which a unit test must not judge, does not.
  const std::string db = (work / "fidelity.db").string();
  for (size_t index = 0; index < plans.size(); ++index) {
    const core::Json& plan = plans[index];
    EXPECT_EQ(plan.at("ranks"), 1);
    EXPECT_GT(plan.at("machine_slowdown").get<double>(), 0);
    const std::string plan_file = (work / ("plan-0" + std::to_string(index) + ".json")).string();
    const LoomResult simulated = run_loom("simulate '" + plan_file + "' --format json");
    ASSERT_EQ(simulated.exit_code, 0) << simulated.err;
    const core::Json prediction = core::parse_json_text(simulated.out, "simulate output");
    EXPECT_DOUBLE_EQ(plan.at("predicted_step_time_s").get<double>(), prediction.at("step_time_s").get<double>());
    // Round-robin: every plan once (runs 1-4), then every plan again (runs 5-8); the median of
    // two runs is their mean.
    ASSERT_EQ(plan.at("measured_step_times_s").size(), 2u);
    double sum = 0;
    core::Json comparison;
    for (size_t repeat = 0; repeat < 2; ++repeat) {
      const size_t run_id = repeat * plans.size() + index + 1;
      const LoomResult compared = run_loom("compare " + std::to_string(run_id) + " --db '" + db + "' --format json");
      ASSERT_EQ(compared.exit_code, 0) << compared.err;
      comparison = core::parse_json_text(compared.out, "compare output");
      EXPECT_EQ(comparison.at("rows").at(0).at("quantity"), "step time");
      const double measured = comparison.at("rows").at(0).at("measured").get<double>();
      EXPECT_DOUBLE_EQ(plan.at("measured_step_times_s").at(repeat).get<double>(), measured);
      sum += measured;
      EXPECT_DOUBLE_EQ(plan.at("predicted_step_time_s").get<double>(),
                       comparison.at("rows").at(0).at("predicted").get<double>());
    }
    EXPECT_NEAR(plan.at("measured_step_time_s").get<double>(), sum / 2, 1e-15);
    EXPECT_LE(plan.at("measured_step_time_min_s").get<double>(), plan.at("measured_step_time_max_s").get<double>());
    EXPECT_GE(plan.at("measured_spread_percent").get<double>(), 0);
    EXPECT_EQ(plan.at("measured_dp_wait_s"), 0.0) << "one rank waits for nobody";
    ASSERT_EQ(comparison.at("ranks").size(), 1u);
    EXPECT_EQ(plan.at("measured_peak_memory_bytes"), comparison.at("ranks").at(0).at("measured_peak_memory_bytes"));
    EXPECT_EQ(plan.at("predicted_peak_memory_bytes"), comparison.at("ranks").at(0).at("predicted_peak_memory_bytes"));
    EXPECT_GT(plan.at("measured_peak_memory_bytes").get<double>(), 0);
  }
  // Full recompute keeps fewer activations than no recompute, measured and predicted alike.
  EXPECT_LT(plans[1].at("measured_peak_memory_bytes").get<double>(), plans[0].at("measured_peak_memory_bytes").get<double>());
  EXPECT_LT(plans[1].at("predicted_peak_memory_bytes").get<double>(), plans[0].at("predicted_peak_memory_bytes").get<double>());
  // Flash attention keeps no s² probabilities: less memory, measured and predicted alike.
  EXPECT_LT(plans[2].at("measured_peak_memory_bytes").get<double>(), plans[0].at("measured_peak_memory_bytes").get<double>());
  EXPECT_LT(plans[2].at("predicted_peak_memory_bytes").get<double>(), plans[0].at("predicted_peak_memory_bytes").get<double>());
  // --calibrate fitted the profile to two of the four plans and reports the other two's error
  // before and after (whether the fit helps is the benchmark's finding on the day, not asserted).
  const core::Json& calibration = out.at("calibration");
  EXPECT_EQ(calibration.at("held_out_plans"), 2);
  for (const char* key : {"held_out_step_time_mape_before_percent", "held_out_step_time_mape_after_percent",
                          "fitted_step_time_mape_before_percent", "fitted_step_time_mape_after_percent"})
    EXPECT_TRUE(std::isfinite(calibration.at(key).get<double>()) && calibration.at(key).get<double>() >= 0) << key;
  // Every table of the off-grid measurement was checked.
  std::set<std::string> tables;
  for (const core::Json& k : out.at("kernels")) {
    tables.insert(k.at("table").get<std::string>());
    EXPECT_GT(k.at("samples").get<int64_t>(), 0);
  }
  for (const char* table : {"gemm nn", "gemm nt", "gemm tn", "attention unfused forward", "attention unfused backward",
                            "attention flash forward", "attention flash backward", "layernorm"})
    EXPECT_TRUE(tables.count(table)) << table;
  fs::remove_all(work);
}

TEST(BenchFidelity, RefusesAProfileThatIsNotOfACpu) {
  const LoomResult r = run_loom("bench fidelity --profile a100-80gb-dgx --max-ranks 1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("no device.host_cores"));
}

}  // namespace
}  // namespace loom::cli::testing
