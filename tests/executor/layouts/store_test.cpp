// The store after a 2-rank run of 10 steps: the run completed (no reason), its plan, 10 steps
// whose losses are the ones printed, one rank_stats row per rank. Through `loom run` (which
// launches mpirun itself) and through loom-exec --db under mpirun directly.

#include "layout_support.hpp"

#include "core/json_reader.hpp"  // core::Json
#include "core/store.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace loom::layout_tests {
namespace {

namespace fs = std::filesystem;

void expect_recorded(const fs::path& db, const RunOutput& printed, int64_t tp, int64_t dp) {
  core::Store store = core::Store::open(db.string());
  const std::vector<core::RunRow> runs = store.list_runs();
  ASSERT_EQ(runs.size(), 1u) << "one run expected in " << db;
  const core::RunRow& run = runs.front();
  EXPECT_EQ(run.status, core::RunStatus::completed) << (run.reason ? *run.reason : "");
  EXPECT_TRUE(!run.reason || run.reason->empty()) << *run.reason;
  EXPECT_TRUE(run.finished_at.has_value());
  EXPECT_EQ(run.backend, "cpu");

  const core::PlanRow plan = store.plan(run.plan_id);
  EXPECT_EQ(plan.world_size, 2);
  EXPECT_EQ(plan.tp, tp);
  EXPECT_EQ(plan.dp, dp);

  const std::vector<core::StepRow> steps = store.steps(run.id);
  ASSERT_EQ(steps.size(), size_t(kSteps));
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i].step, int64_t(i) + 1);
    if (i < printed.losses.size()) {
      EXPECT_EQ(steps[i].loss, printed.losses[i]) << "step " << i + 1;
    }
    EXPECT_GT(steps[i].step_time_s, 0);
    EXPECT_GT(steps[i].tokens_per_s, 0);
  }

  const std::vector<core::RankStatRow> ranks = store.rank_stats(run.id);
  ASSERT_EQ(ranks.size(), 2u);
  for (size_t r = 0; r < ranks.size(); ++r) {
    EXPECT_EQ(ranks[r].rank, int64_t(r));
    EXPECT_GT(ranks[r].peak_memory_bytes.value_or(0), 0) << "rank " << r;
    // The wait for the slowest rank before a group's collective, timed apart from its transfer:
    // every rank reports both waits; a group of two ranks has its barrier, so some time.
    const core::Json times = core::Json::parse(ranks[r].stats_json).at("time_by_category");
    ASSERT_TRUE(times.contains("dp_wait_s") && times.contains("tp_wait_s")) << times.dump();
    EXPECT_EQ(times.at("dp_wait_s").get<double>() > 0, dp > 1) << times.dump();
    EXPECT_EQ(times.at("tp_wait_s").get<double>() > 0, tp > 1) << times.dump();
  }
}

TEST(Store, LoomRunRecordsTheCompletedRun) {
  const Reference& ref = reference();
  const fs::path plan = make_plan(Layout("store_loom_run_tp2", 2, 2));
  const fs::path db = scratch_dir() / "loom_run.db";
  const RunOutput run = run_loom_run(plan, "--steps 10 --db " + quote(db.string()));
  ASSERT_EQ(run.losses.size(), size_t(kSteps)) << run.process.command;
  const std::vector<std::string> problems =
      loss_mismatches(ref.run.losses, run.losses, kLossRelativeTolerance);
  EXPECT_TRUE(problems.empty()) << "loom run's losses differ from the reference:"
                                << join_lines(problems);
  expect_recorded(db, run, 2, 1);
}

TEST(Store, LoomExecRecordsTheCompletedRun) {
  const fs::path plan = make_plan(Layout("store_loom_exec_dp2", 2));
  const fs::path db = scratch_dir() / "loom_exec.db";
  const RunOutput run = run_exec(plan, 2, "--steps 10 --db " + quote(db.string()));
  ASSERT_EQ(run.losses.size(), size_t(kSteps)) << run.process.command;
  expect_recorded(db, run, 1, 2);
}

}  // namespace
}  // namespace loom::layout_tests
