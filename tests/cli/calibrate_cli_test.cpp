// `loom calibrate` end to end: a store of runs "measured" on a perturbed CPU profile, fitted back
// from the built-in one; the profile it writes is usable at once; every bad input is exit 2.

#include "run_loom.hpp"

#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"
#include "core/store.hpp"
#include "core/store_rows.hpp"
#include "simulator/prediction.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

core::Plan cpu_plan(int64_t tp, int64_t pp, int64_t dp, int64_t devices, int64_t micro_batch) {
  core::Plan plan;
  plan.model = core::resolve_model("loom-tiny");
  plan.training.global_batch_size = 8;
  plan.training.dtype = core::DType::fp32;
  plan.cluster.devices_per_node = devices;
  plan.cluster.profile = "cpu-epyc-2core-vm";
  plan.parallel.tensor_parallel = tp;
  plan.parallel.pipeline_parallel = pp;
  plan.parallel.data_parallel = dp;
  plan.parallel.micro_batch_size = micro_batch;
  plan.validate();
  return plan;
}

class CalibrateCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("loom_calibrate_cli_{}_{}", getpid(),
                                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_ = (dir_ / "loom.db").string();
    core::Store store = core::Store::open(db_);
    // "Measured": the built-in profile with its GEMM table 30 % slower, plus ±1 % of noise.
    core::Profile truth = core::resolve_profile("cpu-epyc-2core-vm");
    truth.calibration.emplace().table_time_scales.gemm = 1.3;
    const std::vector<core::Plan> plans = {cpu_plan(1, 1, 1, 1, 1), cpu_plan(1, 1, 1, 1, 4), cpu_plan(2, 1, 1, 2, 2),
                                           cpu_plan(1, 2, 1, 2, 1), cpu_plan(1, 1, 2, 2, 2), cpu_plan(2, 1, 1, 2, 4)};
    const double noise[] = {0.01, -0.008, 0.004, -0.01, 0.006, -0.002};
    for (size_t i = 0; i < plans.size(); ++i) {
      sim::SimulationOptions options;
      options.record_timeline = false;
      const double step_s = sim::simulate(plans[i], truth, options).step_time_s * (1 + noise[i]);
      core::RunRow run;
      run.plan_id = store.insert_plan(core::plan_row(plans[i], fmt::format("plan-{}", i + 1)));
      run.backend = "cpu";
      const int64_t id = store.begin_run(run);
      std::vector<core::StepRow> steps;
      for (int64_t step = 1; step <= 5; ++step) steps.push_back({step, 5.0, step <= 2 ? 10 * step_s : step_s, 1.0, 6e-4, {}});
      store.append_steps(id, steps);
      store.finish_run(id, core::RunStatus::completed, "");
    }
    plan_path_ = (dir_ / "plan.json").string();
    std::ofstream(plan_path_) << core::to_json(plans[2]).dump(2) << "\n";
    // Run 7 is still running; run 8 completed without a step.
    core::RunRow running;
    running.plan_id = 1;
    running.backend = "cpu";
    store.begin_run(running);
    const int64_t empty = store.begin_run(running);
    store.finish_run(empty, core::RunStatus::completed, "");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string calibrate(const std::string& arguments) const {
    return fmt::format("calibrate --db '{}' --profile cpu-epyc-2core-vm {}", db_, arguments);
  }

  fs::path dir_;
  std::string db_, plan_path_;
};

TEST_F(CalibrateCliTest, FitsWritesAUsableProfileAndReportsTheHeldOutError) {
  const std::string out = (dir_ / "my-cluster.json").string();
  const LoomResult r = run_loom(calibrate(fmt::format("--runs 1,2,3,4,5,6 --holdout 2 --out '{}'", out)));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("table_time_scales.gemm"));
  EXPECT_THAT(r.out, HasSubstr("not determined"));
  EXPECT_THAT(r.out, HasSubstr("GEMM table covers every GEMM"));
  EXPECT_THAT(r.out, HasSubstr("held-out runs"));
  EXPECT_THAT(r.out, HasSubstr("held out"));

  const core::Profile profile = core::resolve_profile(out);
  EXPECT_EQ(profile.name, "my-cluster");
  EXPECT_EQ(profile.provenance, "calibrated");
  ASSERT_TRUE(profile.calibration.has_value());
  EXPECT_EQ(profile.calibration->base_profile, "cpu-epyc-2core-vm");
  EXPECT_EQ(profile.calibration->store, db_);
  EXPECT_EQ(profile.calibration->fitted_runs.size(), 4u);
  EXPECT_NEAR(profile.calibration->table_time_scales.gemm, 1.3, 0.06);
  EXPECT_EQ(profile.tables.gemm.size(), core::resolve_profile("cpu-epyc-2core-vm").tables.gemm.size());
  // The store keeps it too, beside the runs it was fitted to.
  {
    core::Store store = core::Store::open(db_, core::Store::OpenMode::existing);
    const std::vector<core::ProfileRow> stored = store.list_profiles();
    ASSERT_EQ(stored.size(), 1u);
    EXPECT_EQ(stored[0].name, "my-cluster");
    EXPECT_EQ(stored[0].provenance, "calibrated");
    EXPECT_EQ(core::profile_from_json(core::Json::parse(stored[0].profile_json), "stored").calibration->fitted_runs.size(),
              4u);
  }

  // Usable at once.
  const LoomResult simulated = run_loom(fmt::format("simulate '{}' --profile '{}'", plan_path_, out));
  EXPECT_EQ(simulated.exit_code, 0) << simulated.err;
  EXPECT_THAT(simulated.out, HasSubstr("my-cluster"));
  const LoomResult planned =
      run_loom(fmt::format("plan --model loom-tiny --devices 2 --devices-per-node 2 --dtype fp32 --global-batch-size 8 "
                           "--attention-backend unfused --profile '{}' --top 2",
                           out));
  EXPECT_EQ(planned.exit_code, 0) << planned.err;
}

TEST_F(CalibrateCliTest, JsonOutput) {
  const std::string out = (dir_ / "c.json").string();
  const LoomResult r =
      run_loom(calibrate(fmt::format("--runs 1,2,3,4,5,6 --parameters table_time_scales.gemm --format json --out '{}'", out)));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json json = nlohmann::json::parse(r.out);
  EXPECT_EQ(json["format"], "loom-calibration");
  EXPECT_EQ(json["runs"].size(), 6u);
  EXPECT_TRUE(json["holdout_step_error_after_percent"].is_null());
  int determined = 0;
  for (const auto& p : json["parameters"]) determined += p["determined"].get<bool>();
  EXPECT_EQ(determined, 1);
  EXPECT_LT(json["fit_step_error_after_percent"].get<double>(), 2.0);
}

TEST_F(CalibrateCliTest, BadInputsAreRefusedWithExitTwo) {
  const std::string out = (dir_ / "out.json").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {calibrate(fmt::format("--runs 1,99 --out '{}'", out)), "no run with id 99"},
      {calibrate(fmt::format("--runs 1,2,7 --out '{}'", out)), "run 7 is running"},
      {calibrate(fmt::format("--runs 1,2,8 --out '{}'", out)), "run 8 has no steps"},
      {calibrate(fmt::format("--runs '' --out '{}'", out)), "--runs is empty"},
      {calibrate(fmt::format("--runs 1,2,2 --out '{}'", out)), "names run 2 twice"},
      {calibrate(fmt::format("--runs 1,x --out '{}'", out)), "'x' is not a run id"},
      {calibrate(fmt::format("--runs 1,2,3 --holdout 2 --out '{}'", out)), "--holdout=2 with 3 runs"},
      {calibrate(fmt::format("--runs 1,2,3 --parameters efficiency.warp --out '{}'", out)), "not a free parameter"},
      {calibrate(fmt::format("--runs 1,2,3 --parameters links.intra-node.latency_s --out '{}'", out)),
       "cannot determine links.intra-node.latency_s"},
      {calibrate(fmt::format("--runs 1,2,3 --out '{}'", db_)), "input"},
      {fmt::format("calibrate --db '{}' --profile '{}' --runs 1,2 --out '{}'", db_, plan_path_, out), "profile"},
      {fmt::format("calibrate --db '{}' --profile cpu-epyc-2core-vm --runs 1,2 --out '{}'", (dir_ / "none.db").string(),
                   out),
       "none.db"},
  };
  for (const auto& [arguments, message] : cases) {
    const LoomResult r = run_loom(arguments);
    EXPECT_EQ(r.exit_code, 2) << arguments << "\n" << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("loom: error: ")) << arguments;
    EXPECT_THAT(r.err, HasSubstr(message)) << arguments;
  }
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace loom::cli::testing
