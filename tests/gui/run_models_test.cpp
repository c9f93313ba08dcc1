// The Runs models over a store filled by hand (QAbstractItemModelTester, Fatal), and RunProcess:
// the `loom run` command it builds, the JSON lines it parses, and how a child's end is reported.

#include "gui_test_support.hpp"

#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/store_rows.hpp"
#include "gui/models/comparison_model.hpp"
#include "gui/models/run_process.hpp"
#include "gui/models/runs_model.hpp"
#include "simulator/run_comparison.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <QAbstractItemModelTester>
#include <QFile>
#include <QFileInfo>
#include <QSignalSpy>

#include <cmath>

namespace loom::gui {
namespace {

using ::testing::HasSubstr;

core::StepRow step_row(int64_t step, double loss, double step_time_s) {
  core::StepRow row;
  row.step = step;
  row.loss = loss;
  row.step_time_s = step_time_s;
  row.tokens_per_s = 2048 / step_time_s;
  row.learning_rate = 6e-4;
  return row;
}

core::RankStatRow rank_stats(int64_t rank, int64_t peak_bytes) {
  const core::Json stats = {{"pipeline_rank", rank},
                            {"measured_steps", 4},
                            {"warmup_steps", 2},
                            {"time_by_category",
                             {{"forward_s", 0.1}, {"backward_s", 0.2}, {"pp_comm_s", 0.1}, {"optimizer_s", 0.02}}}};
  return {rank, peak_bytes, stats.dump()};
}

// A store with a completed run (1), a failed one (2) and one still running without steps (3).
class RunStore : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = test::scratch_dir() + "/" +
            QString::fromUtf8(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".db";
    QFile::remove(path_);
    core::Store store = core::Store::open(path_.toStdString());
    plan_id_ = store.insert_plan(core::plan_row(test::loom_tiny_two_stage_plan(), "by hand"));
    const int64_t completed = begin(store);
    std::vector<core::StepRow> steps;
    for (int64_t s = 1; s <= 6; ++s) steps.push_back(step_row(s, 5.0 - 0.1 * double(s), s <= 2 ? 0.5 : 0.1));
    store.append_steps(completed, steps);
    store.put_rank_stats(completed, {rank_stats(0, 12 << 20), rank_stats(1, 10 << 20)});
    store.finish_run(completed, core::RunStatus::completed, "");
    const int64_t cancelled = begin(store);
    store.append_steps(cancelled, {step_row(1, 5.5, 0.2)});
    store.finish_run(cancelled, core::RunStatus::cancelled, "");
    running_ = begin(store);
  }
  int64_t begin(core::Store& store) const {
    core::RunRow run;
    run.plan_id = plan_id_;
    run.backend = "cpu";
    run.profile_name = "cpu-epyc-2core-vm";
    return store.begin_run(run);
  }
  QString text(const QAbstractItemModel& model, int row, int column) const {
    return model.index(row, column).data().toString();
  }

  QString path_;
  int64_t plan_id_ = 0;
  int64_t running_ = 0;
};

TEST_F(RunStore, RunsModelShowsEveryRunWithUnitsAndSortsByRawNumbers) {
  RunsModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.reload(path_);
  ASSERT_EQ(model.rowCount(), 3);
  EXPECT_EQ(model.columnCount(), RunsModel::column_count);
  EXPECT_EQ(text(model, 0, RunsModel::id), "1");
  EXPECT_EQ(text(model, 0, RunsModel::source), "Loom");
  EXPECT_EQ(model.index(0, RunsModel::source).data(RunsModel::SortRole).toString(), "loom");
  EXPECT_EQ(text(model, 0, RunsModel::plan), QStringLiteral("loom-tiny  tp 1 · pp 2 · dp 1"));
  EXPECT_EQ(text(model, 0, RunsModel::status), "completed");
  EXPECT_EQ(text(model, 0, RunsModel::steps), "6");
  EXPECT_EQ(text(model, 0, RunsModel::last_loss), "4.4000");
  EXPECT_EQ(text(model, 0, RunsModel::step_time), "100.0 ms");
  EXPECT_DOUBLE_EQ(model.index(0, RunsModel::step_time).data(RunsModel::SortRole).toDouble(), 0.1);
  EXPECT_EQ(model.index(0, RunsModel::steps).data(RunsModel::SortRole).toLongLong(), 6);
  EXPECT_EQ(text(model, 1, RunsModel::status), "cancelled");
  EXPECT_FALSE(model.index(1, RunsModel::status).data(Qt::ToolTipRole).isValid()) << "a cancel has no reason to show";
  EXPECT_EQ(text(model, 2, RunsModel::status), "running");
  EXPECT_EQ(text(model, 2, RunsModel::last_loss), QStringLiteral("–"));
  EXPECT_EQ(model.index(2, RunsModel::id).data(RunsModel::RunIdRole).toLongLong(), running_);
  EXPECT_TRUE(model.anyRunning());
  EXPECT_EQ(model.rowOfRun(2), 1);
  EXPECT_EQ(model.rowOfRun(99), -1);
}

TEST_F(RunStore, RunsModelReloadKeepsRowsInPlaceWhileARunWrites) {
  RunsModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.reload(path_);
  QSignalSpy resets(&model, &QAbstractItemModel::modelReset);
  QSignalSpy changes(&model, &QAbstractItemModel::dataChanged);
  QSignalSpy inserts(&model, &QAbstractItemModel::rowsInserted);
  {
    core::Store store = core::Store::open(path_.toStdString());
    store.append_steps(running_, {step_row(1, 5.4, 0.3), step_row(2, 5.2, 0.3)});
  }
  model.reload(path_);
  EXPECT_EQ(resets.count(), 0);
  ASSERT_EQ(changes.count(), 1);
  EXPECT_EQ(changes.front().at(0).toModelIndex().row(), 2);
  EXPECT_EQ(text(model, 2, RunsModel::steps), "2");
  model.reload(path_);  // nothing changed: nothing said
  EXPECT_EQ(changes.count(), 1);
  {
    core::Store store = core::Store::open(path_.toStdString());
    store.finish_run(running_, core::RunStatus::completed, "");
    begin(store);
  }
  model.reload(path_);
  EXPECT_EQ(resets.count(), 0);
  EXPECT_EQ(inserts.count(), 1);
  EXPECT_EQ(model.rowCount(), 4);
  EXPECT_EQ(text(model, 2, RunsModel::status), "completed");
}

TEST_F(RunStore, RunsModelReadsNothingFromAMissingStoreAndRejectsAForeignFile) {
  RunsModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.reload(path_);
  const QString missing = test::scratch_dir() + "/never-created.db";
  model.reload(missing);
  EXPECT_EQ(model.rowCount(), 0);
  EXPECT_FALSE(QFileInfo::exists(missing)) << "looking must not create a store";
  const QString foreign = test::scratch_dir() + "/not-a-store.db";
  QFile file(foreign);
  ASSERT_TRUE(file.open(QIODevice::WriteOnly));
  file.write("this is not SQLite, just some text that is long enough to have a header");
  file.close();
  EXPECT_THROW(model.reload(foreign), Error);
}

TEST_F(RunStore, ComparisonModelShowsTheRowsOfLoomCompareAndPeakMemoryPerRank) {
  ComparisonModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  EXPECT_EQ(model.rowCount(), 0);
  core::Store store = core::Store::open(path_.toStdString());
  const sim::RunComparison c = sim::compare_run(store, 1);
  model.setComparison(c);
  // 11 categories (sim::RunComparison::rows, the two waits for the slowest rank last), 2 ranks.
  ASSERT_EQ(model.rowCount(), 11 + 2);
  EXPECT_EQ(model.firstMemoryRow(), 11);
  EXPECT_EQ(text(model, 0, ComparisonModel::quantity), "step time");
  EXPECT_EQ(text(model, 0, ComparisonModel::measured), "100.00 ms");
  EXPECT_DOUBLE_EQ(model.index(0, ComparisonModel::predicted).data(ComparisonModel::SortRole).toDouble(),
                   c.rows[0].predicted);
  const double error = c.rows[0].error_percent.value();
  EXPECT_EQ(text(model, 0, ComparisonModel::error), QStringLiteral("%1%2 %").arg(error >= 0 ? "+" : "").arg(error, 0, 'f', 1));
  EXPECT_THAT(text(model, 1, ComparisonModel::predicted).toStdString(), HasSubstr("tokens/s"));
  EXPECT_EQ(text(model, 6, ComparisonModel::quantity), "pp comm + bubble/wait");
  EXPECT_EQ(text(model, 9, ComparisonModel::quantity), "dp wait (slowest rank)");
  EXPECT_EQ(text(model, 11, ComparisonModel::quantity), "peak memory, rank 0 (stage 0)");
  EXPECT_EQ(text(model, 11, ComparisonModel::measured), "12.0 MiB");
  EXPECT_EQ(text(model, 12, ComparisonModel::measured), "10.0 MiB");
  for (int row = 0; row < model.rowCount(); ++row)
    EXPECT_TRUE(std::isfinite(model.index(row, ComparisonModel::error).data(ComparisonModel::SortRole).toDouble()));
  model.clear();
  EXPECT_EQ(model.rowCount(), 0);
}

TEST(RunProcessCommand, BuildsTheLoomRunArgumentsAndQuotesThemForTheShell) {
  RunProcess process;
  process.setLoomPath("/opt/loom build/bin/loom");
  RunRequest request;
  request.plan_path = "/tmp/my plan.json";
  request.steps = 6;
  request.store_path = "/tmp/loom.db";
  EXPECT_EQ(RunProcess::arguments(request),
            QStringList({"run", "/tmp/my plan.json", "--jsonl", "--db", "/tmp/loom.db", "--steps", "6", "--backend", "cpu",
                         "--launcher", "mpirun"}));
  EXPECT_EQ(process.commandLine(request), "'/opt/loom build/bin/loom' run '/tmp/my plan.json' --jsonl --db /tmp/loom.db "
                                          "--steps 6 --backend cpu --launcher mpirun");
  request.data_path = "/data/tiny shakespeare's.bin";
  request.backend = "cuda";
  request.launcher = "srun";
  request.steps = 0;  // the plan's own
  EXPECT_THAT(process.commandLine(request).toStdString(),
              HasSubstr("--data '/data/tiny shakespeare'\\''s.bin' --backend cuda --launcher srun"));
  EXPECT_THAT(process.commandLine(request).toStdString(), ::testing::Not(HasSubstr("--steps")));
  EXPECT_THAT(process.commandLine(request).toStdString(), ::testing::Not(HasSubstr("--profile")));
  EXPECT_THAT(process.commandLine(request).toStdString(), ::testing::Not(HasSubstr("--threads")));
  EXPECT_EQ(RunProcess::defaultLoomPath(), QCoreApplication::applicationDirPath() + "/loom");
}

TEST(RunProcessCommand, PassesTheProfileAndTheThreadsToLoomRun) {
  // Without them a run from the app was compared with the plan's datasheet profile, and its
  // threads were whatever the default gave.
  RunRequest request;
  request.plan_path = "plan.json";
  request.profile = "/home/me/this machine.json";
  request.threads = 2;
  EXPECT_EQ(RunProcess::arguments(request),
            QStringList({"run", "plan.json", "--jsonl", "--backend", "cpu", "--launcher", "mpirun", "--profile",
                         "/home/me/this machine.json", "--threads", "2"}));
  request.threads = 0;  // loom run's launch rule decides
  EXPECT_EQ(RunProcess::arguments(request).mid(7), QStringList({"--profile", "/home/me/this machine.json"}));
}

TEST(RunProcessCommand, ResumesFromTheCheckpointDirectoryOnlyWithOne) {
  // A re-planned run (Runs ▸ Re-plan and resume…) continues from the newest checkpoint there.
  RunRequest request;
  request.plan_path = "plan.json";
  request.checkpoint_dir = "/data/ckpt";
  request.resume = true;
  EXPECT_EQ(RunProcess::arguments(request).mid(7), QStringList({"--checkpoint-dir", "/data/ckpt", "--resume"}));
  request.resume = false;
  EXPECT_EQ(RunProcess::arguments(request).mid(7), QStringList({"--checkpoint-dir", "/data/ckpt"}));
  request.checkpoint_dir.clear();
  request.resume = true;  // nothing to resume from: loom run would refuse it
  EXPECT_EQ(RunProcess::arguments(request).size(), 7);
}

TEST(RunProcessLines, JsonLinesBecomeSignals) {
  RunProcess process;
  QSignalSpy started(&process, &RunProcess::runStarted);
  QSignalSpy steps(&process, &RunProcess::step);
  QSignalSpy log(&process, &RunProcess::logLine);
  process.handleOutputLine(R"({"event":"run","run_id":42})" "\n");
  process.handleOutputLine(R"({"step":1,"loss":5.54,"step_time_s":0.335,"tokens_per_s":1526.3,"grad_norm":5.8,"learning_rate":0.0006})");
  process.handleOutputLine(R"({"step":2,"loss":null,"step_time_s":0.1,"tokens_per_s":5000})");
  process.handleOutputLine("not json: a launcher's warning");
  process.handleOutputLine("   ");
  ASSERT_EQ(started.count(), 1);
  EXPECT_EQ(started.front().at(0).toLongLong(), 42);
  EXPECT_EQ(process.runId(), 42);
  ASSERT_EQ(steps.count(), 2);
  EXPECT_EQ(steps.at(0).at(0).toLongLong(), 1);
  EXPECT_DOUBLE_EQ(steps.at(0).at(1).toDouble(), 5.54);
  EXPECT_DOUBLE_EQ(steps.at(0).at(2).toDouble(), 0.335);
  EXPECT_DOUBLE_EQ(steps.at(0).at(3).toDouble(), 1526.3);
  EXPECT_TRUE(std::isnan(steps.at(1).at(1).toDouble())) << "a diverged loss is null";
  ASSERT_EQ(log.count(), 1);
  EXPECT_EQ(log.front().at(0).toString(), "not json: a launcher's warning");
}

RunRequest request_for(int steps) {
  RunRequest request;
  request.plan_path = "plan.json";
  request.steps = steps;
  return request;
}

// A stand-in for `loom` that prints what `loom run --jsonl` prints, then does `tail`.
QString fake_loom(const QString& name, const QString& tail) {
  const QString path = test::scratch_dir() + "/" + name;
  QFile file(path);
  EXPECT_TRUE(file.open(QIODevice::WriteOnly));
  file.write(QStringLiteral("#!/bin/sh\n"
                            "echo '{\"event\":\"run\",\"run_id\":7}'\n"
                            "echo 'loom: mpirun -np 2 loom-exec run plan.json' >&2\n"
                            "echo '{\"step\":1,\"loss\":5.5,\"step_time_s\":0.2,\"tokens_per_s\":1000}'\n"
                            "%1\n")
                 .arg(tail)
                 .toUtf8());
  file.close();
  file.setPermissions(file.permissions() | QFileDevice::ExeOwner);
  return path;
}

TEST(RunProcessChild, AFailureReportsLoomsOwnMessage) {
  RunProcess process;
  process.setLoomPath(fake_loom("failing-loom", "echo 'loom: error: step 2: the loss is nan' >&2; exit 1"));
  QSignalSpy finished(&process, &RunProcess::finished);
  QSignalSpy steps(&process, &RunProcess::step);
  process.start(request_for(2));
  ASSERT_TRUE(test::wait_until([&] { return finished.count() > 0; }, std::chrono::seconds(20)));
  EXPECT_EQ(steps.count(), 1);
  EXPECT_EQ(finished.front().at(0).toLongLong(), 7);
  EXPECT_FALSE(finished.front().at(1).toBool());
  EXPECT_EQ(finished.front().at(2).toString(), "step 2: the loss is nan");
  EXPECT_EQ(process.lastErrorLines().size(), 2);
  EXPECT_FALSE(process.isRunning());
}

TEST(RunProcessChild, SuccessAndAMissingBinary) {
  RunProcess process;
  process.setLoomPath(fake_loom("good-loom", "exit 0"));
  QSignalSpy finished(&process, &RunProcess::finished);
  process.start(request_for(1));
  ASSERT_TRUE(test::wait_until([&] { return finished.count() > 0; }, std::chrono::seconds(20)));
  EXPECT_TRUE(finished.front().at(1).toBool());
  EXPECT_EQ(finished.front().at(2).toString(), "completed 1 step(s)");

  process.setLoomPath(test::scratch_dir() + "/no-such-loom");
  process.start(request_for(1));
  ASSERT_TRUE(test::wait_until([&] { return finished.count() > 1; }, std::chrono::seconds(20)));
  EXPECT_FALSE(finished.at(1).at(1).toBool());
  EXPECT_THAT(finished.at(1).at(2).toString().toStdString(), HasSubstr("cannot start"));
}

TEST(RunProcessChild, CancelTerminatesAndThenKillsAChildThatIgnoresIt) {
  RunProcess process;
  process.setCancelGraceMs(300);
  // Ignores SIGTERM: only the kill after the grace period ends it.
  process.setLoomPath(fake_loom("stubborn-loom", "trap '' TERM; while true; do sleep 0.05; done"));
  QSignalSpy finished(&process, &RunProcess::finished);
  QSignalSpy steps(&process, &RunProcess::step);
  process.start(request_for(100));
  ASSERT_TRUE(test::wait_until([&] { return steps.count() > 0; }, std::chrono::seconds(20)));
  process.cancel();
  ASSERT_TRUE(test::wait_until([&] { return finished.count() > 0; }, std::chrono::seconds(20)));
  EXPECT_FALSE(finished.front().at(1).toBool());
  EXPECT_EQ(finished.front().at(2).toString(), "cancelled by the user");
  EXPECT_FALSE(process.isRunning());
}

}  // namespace
}  // namespace loom::gui
