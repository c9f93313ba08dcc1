// sim::compare_run over a store filled by hand: the rows `loom compare` and the GUI show, which
// stage's categories they take, the warm-up they exclude, peak memory per rank, and the errors.

#include "simulator/run_comparison.hpp"
#include "../loom_tiny_plan.hpp"

#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "core/store_rows.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

namespace loom::sim {
namespace {

namespace fs = std::filesystem;

core::StepRow step_row(int64_t step, double step_time_s) {
  core::StepRow row;
  row.step = step;
  row.loss = 5.0 - 0.1 * double(step);
  row.step_time_s = step_time_s;
  row.learning_rate = 6e-4;
  return row;
}

// Rank statistics as the executor stores them: seconds per category summed over measured steps.
core::RankStatRow rank_stats(int64_t rank, int64_t stage, int64_t peak_bytes, double forward_s, double pp_comm_s,
                             int64_t measured_steps, int64_t warmup_steps) {
  const core::Json stats = {{"tensor_rank", 0},
                            {"data_rank", 0},
                            {"pipeline_rank", stage},
                            {"measured_steps", measured_steps},
                            {"warmup_steps", warmup_steps},
                            {"time_by_category",
                             {{"forward_s", forward_s},
                              {"backward_s", 2 * forward_s},
                              {"recompute_s", 0.0},
                              {"tp_comm_s", 0.0},
                              {"pp_comm_s", pp_comm_s},
                              {"dp_comm_s", 0.0},
                              {"optimizer_s", 0.1}}}};
  return {rank, peak_bytes, stats.dump()};
}

class RunComparisonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = fs::temp_directory_path() /
            ("loom_run_comparison_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db");
    fs::remove(path_);
    store_.emplace(core::Store::open(path_.string()));
    plan_ = loom::testing::loom_tiny_two_stage_plan();
    core::RunRow run;
    run.plan_id = store_->insert_plan(core::plan_row(plan_, "two stages"));
    run.backend = "cpu";
    run.profile_name = "cpu-epyc-2core-vm";
    run_id_ = store_->begin_run(run);
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path_.string() + suffix);
  }
  // Six steps of 100 ms after two warm-up steps of 1 s, and both stages' statistics.
  void store_finished_run() {
    std::vector<core::StepRow> steps;
    for (int64_t step = 1; step <= 6; ++step) steps.push_back(step_row(step, step <= 2 ? 1.0 : 0.1));
    store_->append_steps(run_id_, steps);
    store_->put_rank_stats(run_id_, {rank_stats(0, 0, 12'000'000, 0.16, 0.2, 4, 2),
                                     rank_stats(1, 1, 10'000'000, 0.08, 0.4, 4, 2)});
    store_->finish_run(run_id_, core::RunStatus::completed, "");
  }
  Prediction predicted() const {
    SimulationOptions options;
    options.record_timeline = false;
    return simulate(plan_, core::resolve_profile("cpu-epyc-2core-vm"), options);
  }

  fs::path path_;
  std::optional<core::Store> store_;
  core::Plan plan_;
  int64_t run_id_ = 0;
};

TEST_F(RunComparisonTest, RowsSetThePredictionBesideTheSteadyStateMeasurement) {
  store_finished_run();
  const RunComparison c = compare_run(*store_, run_id_);
  const Prediction p = predicted();
  EXPECT_EQ(c.run_id, run_id_);
  EXPECT_EQ(c.status, core::RunStatus::completed);
  EXPECT_EQ(c.profile_name, "cpu-epyc-2core-vm");
  EXPECT_EQ(c.stored_steps, 6);
  EXPECT_EQ(c.warmup_steps, 2);
  EXPECT_EQ(c.measured_steps, 4);
  EXPECT_EQ(c.compared_pipeline_rank, p.critical_pipeline_rank);
  EXPECT_DOUBLE_EQ(c.runtime_reserve_bytes, double(p.memory.front().other_bytes));

  std::vector<std::string> quantities;
  for (const ComparisonRow& row : c.rows) quantities.push_back(row.quantity);
  EXPECT_THAT(quantities, ::testing::ElementsAre("step time", "tokens/s", "forward", "backward", "recompute", "tp comm (exposed)",
                                                 "pp comm + bubble/wait", "dp comm (exposed)", "optimizer",
                                                 "dp wait (slowest rank)", "tp wait (slowest rank)"));
  // The warm-up's slow steps are left out: 100 ms per step.
  const ComparisonRow& step = c.rows[0];
  EXPECT_EQ(step.unit, "s");
  EXPECT_DOUBLE_EQ(step.predicted, p.step_time_s);
  EXPECT_NEAR(step.measured.value(), 0.1, 1e-12);
  EXPECT_NEAR(step.error_percent.value(), 100.0 * (p.step_time_s - 0.1) / 0.1, 1e-9);
  const ComparisonRow& tokens = c.rows[1];
  EXPECT_EQ(tokens.unit, "tokens/s");
  EXPECT_NEAR(tokens.measured.value(), 8.0 * double(plan_.model.seq_length) / 0.1, 1e-6);
  EXPECT_DOUBLE_EQ(tokens.predicted, p.tokens_per_s);

  // Categories are those of the critical stage, per measured step.
  const bool first_stage = p.critical_pipeline_rank == 0;
  const double forward_total = first_stage ? 0.16 : 0.08, pp_total = first_stage ? 0.2 : 0.4;
  EXPECT_NEAR(c.rows[2].measured.value(), forward_total / 4, 1e-12);
  EXPECT_DOUBLE_EQ(c.rows[2].predicted, p.breakdown.forward_s);
  EXPECT_NEAR(c.rows[3].measured.value(), 2 * forward_total / 4, 1e-12);
  EXPECT_NEAR(c.rows[6].measured.value(), pp_total / 4, 1e-12);
  EXPECT_DOUBLE_EQ(c.rows[6].predicted, p.breakdown.pp_comm_exposed_s + p.breakdown.pp_bubble_s);
  EXPECT_NEAR(c.rows[8].measured.value(), 0.1 / 4, 1e-12);
  // Nothing measured: no error to speak of.
  EXPECT_EQ(c.rows[4].measured, 0.0) << "a category the ranks did not report took no time";
  EXPECT_EQ(c.rows[4].error_percent, 0.0);

  ASSERT_EQ(c.ranks.size(), 2u);
  for (const RankMemoryComparison& rank : c.ranks) {
    EXPECT_EQ(rank.pipeline_rank, rank.rank);
    const StageMemory& stage = p.memory.at(size_t(rank.pipeline_rank));
    EXPECT_DOUBLE_EQ(rank.predicted_peak_bytes, double(stage.total_bytes() - stage.other_bytes));
    EXPECT_NEAR(rank.error_percent, error_percent(rank.predicted_peak_bytes, rank.measured_peak_bytes), 1e-12);
  }
  EXPECT_DOUBLE_EQ(c.ranks[0].measured_peak_bytes, 12e6);
  EXPECT_DOUBLE_EQ(c.ranks[1].measured_peak_bytes, 10e6);
}

TEST_F(RunComparisonTest, AnotherProfileGivesAnotherPrediction) {
  store_finished_run();
  const RunComparison own = compare_run(*store_, run_id_);
  const RunComparison other = compare_run(*store_, run_id_, "a100-80gb-dgx");
  EXPECT_EQ(other.profile_name, "a100-80gb-dgx");
  SimulationOptions options;
  options.record_timeline = false;
  EXPECT_DOUBLE_EQ(other.rows[0].predicted,
                   simulate(plan_, core::resolve_profile("a100-80gb-dgx"), options).step_time_s);
  EXPECT_NE(other.rows[0].predicted, own.rows[0].predicted);
  EXPECT_DOUBLE_EQ(other.rows[0].measured.value(), own.rows[0].measured.value());
}

TEST_F(RunComparisonTest, ARunWithoutStepsOrIdIsAnError) {
  EXPECT_THAT([&] { compare_run(*store_, run_id_); },
              ::testing::ThrowsMessage<InvalidInput>(::testing::HasSubstr("has no steps recorded yet (status running)")));
  EXPECT_THROW(compare_run(*store_, run_id_ + 5), InvalidInput);
}

// A run stopped by Ctrl-C (or failed) has its steps but never wrote per-rank statistics: its step
// time is compared, and its categories and memory are not measured (not 0, not an error).
TEST_F(RunComparisonTest, AStoppedRunIsComparedOnItsSteps) {
  std::vector<core::StepRow> steps;
  for (int64_t step = 1; step <= 300; ++step) steps.push_back(step_row(step, step <= 2 ? 1.0 : 0.1));
  store_->append_steps(run_id_, steps);
  store_->finish_run(run_id_, core::RunStatus::cancelled, "");
  const RunComparison c = compare_run(*store_, run_id_);
  EXPECT_FALSE(c.has_rank_statistics);
  EXPECT_EQ(c.stored_steps, 300);
  EXPECT_EQ(c.measured_steps, 300 - c.warmup_steps);
  ASSERT_TRUE(c.rows[0].measured.has_value());
  EXPECT_NEAR(*c.rows[0].measured, steady_step_time_s(steps), 1e-12);
  EXPECT_TRUE(c.rows[0].error_percent.has_value());
  EXPECT_TRUE(c.rows[1].measured.has_value()) << "tokens/s follows from the step time";
  for (size_t row = 2; row < c.rows.size(); ++row) {
    EXPECT_FALSE(c.rows[row].measured.has_value()) << c.rows[row].quantity;
    EXPECT_FALSE(c.rows[row].error_percent.has_value()) << c.rows[row].quantity;
  }
  EXPECT_TRUE(c.ranks.empty());
}

// The executor times the wait for the slowest data or tensor rank apart from the transfer: the
// wait rows show it (predicted 0: the simulator's ranks are identical, so no error); a run stored
// before the executor timed waits has no such category and its waits are not measured, not 0.
TEST_F(RunComparisonTest, WaitsForTheSlowestRankAreRowsOfTheirOwn) {
  std::vector<core::StepRow> steps;
  for (int64_t step = 1; step <= 6; ++step) steps.push_back(step_row(step, 0.1));
  store_->append_steps(run_id_, steps);
  std::vector<core::RankStatRow> ranks;
  for (int64_t stage : {0, 1}) {
    core::RankStatRow row = rank_stats(stage, stage, 10'000'000, 0.1, 0.2, 4, 2);
    core::Json stats = core::Json::parse(row.stats_json);
    stats["time_by_category"]["dp_wait_s"] = 0.04;
    stats["time_by_category"]["tp_wait_s"] = 0.0;
    row.stats_json = stats.dump();
    ranks.push_back(row);
  }
  store_->put_rank_stats(run_id_, ranks);
  store_->finish_run(run_id_, core::RunStatus::completed, "");
  const RunComparison c = compare_run(*store_, run_id_);
  const ComparisonRow& dp_wait = c.rows[9];
  ASSERT_EQ(dp_wait.quantity, "dp wait (slowest rank)");
  EXPECT_EQ(dp_wait.predicted, 0.0);
  EXPECT_NEAR(dp_wait.measured.value(), 0.04 / 4, 1e-12);
  EXPECT_FALSE(dp_wait.error_percent.has_value());
  EXPECT_EQ(c.rows[10].measured, 0.0);
}

TEST_F(RunComparisonTest, RunsStoredBeforeWaitsWereTimedHaveNoWaitRowsMeasured) {
  store_finished_run();  // statistics without dp_wait_s and tp_wait_s
  const RunComparison c = compare_run(*store_, run_id_);
  ASSERT_EQ(c.rows.size(), 11u);
  EXPECT_TRUE(c.rows[7].measured.has_value()) << "dp comm, waits included";
  EXPECT_FALSE(c.rows[9].measured.has_value());
  EXPECT_FALSE(c.rows[10].measured.has_value());
}

TEST(RunSummary, WarmupStepTimeAndErrors) {
  EXPECT_NEAR(error_percent(1.1, 1.0), 10.0, 1e-9);
  EXPECT_NEAR(error_percent(0.5, 1.0), -50.0, 1e-12);
  EXPECT_EQ(error_percent(1.0, 0.0), 0.0);
  EXPECT_EQ(steady_step_time_s({}), 0.0);
  // Three steps: the first is warm-up (core::warmup_steps).
  const std::vector<core::StepRow> steps = {step_row(1, 9.0), step_row(2, 1.0), step_row(3, 3.0)};
  EXPECT_NEAR(steady_step_time_s(steps), 2.0, 1e-12);
  EXPECT_EQ(warmup_steps_of(steps), 1);
  EXPECT_EQ(pipeline_rank_of({0, 0, R"({"pipeline_rank": 3})"}), 3);
}

// An attempt owns the steps from its first to its last, up to where the next attempt began: a
// later attempt resumed from an earlier checkpoint logged the steps after it again.
TEST(AttemptStepsTest, EachAttemptKeepsTheStepsNoLaterAttemptRewrote) {
  std::vector<core::StepRow> steps;
  for (int64_t step = 1; step <= 10; ++step) steps.push_back({step, 1.0, 0.1, 1.0, 1e-4, std::nullopt});
  core::RunAttemptRow first, second;
  first.attempt = 1;
  first.start_step = 1;
  first.end_step = 6;
  second.attempt = 2;
  second.start_step = 5;
  second.end_step = 10;
  const std::vector<core::RunAttemptRow> attempts = {first, second};
  const auto numbers = [](const std::vector<core::StepRow>& rows) {
    std::vector<int64_t> out;
    for (const core::StepRow& row : rows) out.push_back(row.step);
    return out;
  };
  EXPECT_EQ(numbers(attempt_steps(steps, attempts, 1)), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(numbers(attempt_steps(steps, attempts, 2)), (std::vector<int64_t>{5, 6, 7, 8, 9, 10}));
  EXPECT_TRUE(attempt_steps(steps, attempts, 3).empty());
  EXPECT_EQ(attempt_steps(steps, {first}, 1).size(), 10u) << "a run's only attempt owns all its steps";
}

}  // namespace
}  // namespace loom::sim
