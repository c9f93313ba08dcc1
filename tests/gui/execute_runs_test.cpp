// Execute and Runs end to end: `loom run` over two real ranks started from the Execute view, the
// store read by the Runs view while and after the run writes it, and a cancel that stops the
// ranks and records the run as cancelled.

#include "gui_test_support.hpp"

#include "core/model_presets.hpp"
#include "core/store.hpp"
#include "gui/execute_view.hpp"
#include "gui/models/comparison_model.hpp"
#include "gui/models/runs_model.hpp"
#include "gui/runs_view.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <QElapsedTimer>
#include <QSignalSpy>

#include <cmath>

namespace loom::gui {
namespace {

using ::testing::HasSubstr;

// The shared two-stage plan, trained for 20 steps by default.
core::Plan tiny_two_rank_plan() {
  core::Plan plan = test::loom_tiny_two_stage_plan();
  plan.training.train_iters = 20;
  plan.training.lr_warmup_iters = 1;
  plan.validate();
  return plan;
}

class ExecuteAndRuns : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = test::scratch_dir() + "/" +
             QString::fromUtf8(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".db";
    execute_.process().setLoomPath(test::binary_dir() + "/loom");
    execute_.setStorePath(store_);
    execute_.setPlan(tiny_two_rank_plan());
  }
  QString store_;
  ExecuteView execute_;
};

TEST_F(ExecuteAndRuns, ARunReachesItsLastStepAndTheRunsViewComparesIt) {
  execute_.setSteps(6);
  const QString command = execute_.commandLine();
  EXPECT_THAT(command.toStdString(), HasSubstr((test::binary_dir() + "/loom run ").toStdString()));
  EXPECT_THAT(command.toStdString(), HasSubstr("--jsonl --db " + store_.toStdString() + " --steps 6 --backend cpu "
                                               "--launcher mpirun"));
  QSignalSpy started(&execute_, &ExecuteView::runStarted);
  QSignalSpy steps(&execute_, &ExecuteView::stepReported);
  QSignalSpy finished(&execute_, &ExecuteView::runFinished);
  QElapsedTimer clock;
  clock.start();
  execute_.start();
  EXPECT_TRUE(execute_.isRunning());
  ASSERT_TRUE(test::wait_until([&] { return finished.count() > 0; }, std::chrono::seconds(120)))
      << execute_.statusText().toStdString();
  std::cout << "[ timing   ] a 6-step run on 2 ranks from the Execute view: " << clock.elapsed() << " ms\n";
  ASSERT_TRUE(finished.front().at(1).toBool()) << execute_.statusText().toStdString();
  ASSERT_EQ(started.count(), 1);
  const qint64 run_id = started.front().at(0).toLongLong();
  EXPECT_EQ(finished.front().at(0).toLongLong(), run_id);
  EXPECT_EQ(steps.count(), 6);
  EXPECT_EQ(execute_.lastStep(), 6);
  EXPECT_FALSE(execute_.isRunning());
  EXPECT_THAT(execute_.statusText().toStdString(), HasSubstr("completed"));
  test::save_screenshot(execute_, "execute");

  RunsView runs;
  runs.setStorePath(store_);
  runs.selectRun(run_id);
  const RunsModel& model = *runs.runsModel();
  const int row = model.rowOfRun(run_id);
  ASSERT_GE(row, 0);
  EXPECT_EQ(model.row(row).status, core::RunStatus::completed);
  EXPECT_EQ(model.row(row).steps, 6);
  EXPECT_EQ(runs.selectedRun(), run_id);
  EXPECT_EQ(runs.curvePoints(), 12);
  const ComparisonModel& comparison = *runs.comparisonModel();
  ASSERT_EQ(comparison.rowCount(), 11 + 2) << runs.comparisonMessage().toStdString();
  for (int r = 0; r < comparison.rowCount(); ++r) {
    const double error = comparison.index(r, ComparisonModel::error).data(ComparisonModel::SortRole).toDouble();
    EXPECT_TRUE(std::isfinite(error)) << comparison.index(r, ComparisonModel::quantity).data().toString().toStdString();
  }
  EXPECT_GT(comparison.index(0, ComparisonModel::measured).data(ComparisonModel::SortRole).toDouble(), 0.0);
  test::save_screenshot(runs, "runs");
}

TEST_F(ExecuteAndRuns, CancelStopsTheRanksAndTheRunIsRecordedAsCancelled) {
  execute_.setSteps(100000);
  RunsView runs;
  runs.setStorePath(store_);
  QObject::connect(&execute_, &ExecuteView::runStarted, &runs, &RunsView::refresh);
  QSignalSpy started(&execute_, &ExecuteView::runStarted);
  QSignalSpy steps(&execute_, &ExecuteView::stepReported);
  QSignalSpy finished(&execute_, &ExecuteView::runFinished);
  execute_.start();
  ASSERT_TRUE(test::wait_until([&] { return steps.count() > 0 || finished.count() > 0; }, std::chrono::seconds(120)));
  ASSERT_EQ(finished.count(), 0) << execute_.statusText().toStdString();
  ASSERT_EQ(started.count(), 1);
  const qint64 run_id = started.front().at(0).toLongLong();
  // The Runs view sees the run while it writes.
  ASSERT_TRUE(test::wait_until([&] { return runs.runsModel()->rowOfRun(run_id) >= 0; }, std::chrono::seconds(10)));
  EXPECT_EQ(runs.runsModel()->row(runs.runsModel()->rowOfRun(run_id)).status, core::RunStatus::running);

  // The wait is a hang guard, not a timing: 100,000 steps would take hours, so a run that ends
  // at all within it was stopped by the cancel (and the store says how far it got).
  execute_.cancel();
  ASSERT_TRUE(test::wait_until([&] { return finished.count() > 0; }, std::chrono::seconds(60)));
  EXPECT_FALSE(finished.front().at(1).toBool());
  EXPECT_FALSE(execute_.isRunning());
  EXPECT_THAT(execute_.statusText().toStdString(), HasSubstr("cancelled by the user"));

  core::Store store = core::Store::open(store_.toStdString());
  const core::RunRow run = store.run(run_id);
  EXPECT_EQ(run.status, core::RunStatus::cancelled);
  EXPECT_FALSE(run.reason.has_value());
  EXPECT_LT(store.steps(run_id).size(), 100000u);
  runs.refresh();
  EXPECT_EQ(runs.runsModel()->row(runs.runsModel()->rowOfRun(run_id)).status, core::RunStatus::cancelled);
}

}  // namespace
}  // namespace loom::gui
