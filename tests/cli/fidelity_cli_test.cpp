// `loom bench fidelity` end to end on one rank: it trains real plans, measures kernels off the
// profile's grid, and reports predicted against measured numbers that all come from runs.

#include "core/json_reader.hpp"
#include "run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <set>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(BenchFidelity, TrainsEveryOneRankPlanAndSetsItBesideItsPrediction) {
  const fs::path work = fs::temp_directory_path() / ("loom-fidelity-test-" + std::to_string(getpid()));
  const LoomResult r = run_loom("bench fidelity --profile cpu-epyc-2core-vm --max-ranks 1 --steps 4 --format json "
                                "--work-dir " + work.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const core::Json out = core::parse_json_text(r.out, "bench output");
  EXPECT_EQ(out.at("format"), "loom-bench-fidelity");
  const core::Json& plans = out.at("plans");
  ASSERT_EQ(plans.size(), 2u);  // the single-rank plans: plain and full recompute
  for (const core::Json& plan : plans) {
    EXPECT_EQ(plan.at("ranks"), 1);
    EXPECT_GT(plan.at("predicted_step_time_s").get<double>(), 0);
    EXPECT_GT(plan.at("measured_step_time_s").get<double>(), 0);
    EXPECT_GT(plan.at("measured_peak_memory_bytes").get<double>(), 0);
    EXPECT_GT(plan.at("machine_slowdown").get<double>(), 0);
    // The prediction and the measurement of the same run are of one order of magnitude: a
    // wiring mistake (ms for s, another run's numbers) would not be.
    const double ratio = plan.at("predicted_step_time_s").get<double>() / plan.at("measured_step_time_s").get<double>();
    EXPECT_GT(ratio, 0.3);
    EXPECT_LT(ratio, 3.0);
  }
  // Full recompute keeps fewer activations than no recompute, measured and predicted alike.
  EXPECT_LT(plans[1].at("measured_peak_memory_bytes").get<double>(), plans[0].at("measured_peak_memory_bytes").get<double>());
  EXPECT_LT(plans[1].at("predicted_peak_memory_bytes").get<double>(), plans[0].at("predicted_peak_memory_bytes").get<double>());
  // Every table of the off-grid measurement was checked.
  std::set<std::string> tables;
  for (const core::Json& k : out.at("kernels")) {
    tables.insert(k.at("table").get<std::string>());
    EXPECT_GT(k.at("samples").get<int64_t>(), 0);
  }
  for (const char* table : {"gemm nn", "gemm nt", "gemm tn", "attention forward", "attention backward", "layernorm"})
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
