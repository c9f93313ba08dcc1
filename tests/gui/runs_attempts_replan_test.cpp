// The Runs view's attempts and "Re-plan and resume…" (issue 22): a run re-planned after a failure
// lists its attempts, and each is compared with its own plan's prediction; a failed run is
// re-planned from a checkpoint directory (tests/checkpoint_fixture.hpp: manifests only) for the
// devices left, the plan written next to the directory under a fresh name and handed to Execute
// with --resume; bad inputs end in one message box and write nothing. No training is started.

#include "gui_test_support.hpp"

#include "core/plan_json.hpp"
#include "core/profile.hpp"
#include "core/store.hpp"
#include "core/store_rows.hpp"
#include "gui/execute_view.hpp"
#include "gui/main_window.hpp"
#include "gui/models/comparison_model.hpp"
#include "gui/replan_dialog.hpp"
#include "gui/runs_view.hpp"
#include "simulator/prediction.hpp"
#include "tests/checkpoint_fixture.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QMessageBox>
#include <QPushButton>
#include <QTabWidget>
#include <QTableWidget>

#include <filesystem>

// Named: the unity build puts this file in one translation unit with the other tests.
namespace loom::gui::attempts_and_replan {
namespace {

using loom::testing::CheckpointFixture;
using loom::testing::loom_tiny_four_device_plan;
using ::testing::HasSubstr;
using ::testing::Not;

QString store_for_test() {
  const QString path =
      test::scratch_dir() + "/" +
      QString::fromUtf8(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".db";
  QFile::remove(path);
  return path;
}

// The message box the view opened last (window-modal, not blocking), closed after reading it.
QString take_message_box(QWidget& view) {
  const QList<QMessageBox*> boxes = view.findChildren<QMessageBox*>();
  if (boxes.isEmpty()) return {};
  const QString text = boxes.back()->text();
  for (QMessageBox* box : boxes) box->close();
  QCoreApplication::processEvents();
  return text;
}

// loom-tiny on 2 devices, tp1 pp2 dp1: the plan a 4-device run continues on after losing two.
core::Plan two_device_plan() {
  core::Plan plan = loom_tiny_four_device_plan();
  plan.cluster.devices_per_node = 2;
  plan.parallel.data_parallel = 1;
  plan.validate();
  return plan;
}

// The plan stored with the prediction a run is compared against, as `loom run` stores them.
std::pair<int64_t, int64_t> insert_predicted(core::Store& store, const core::Plan& plan) {
  const sim::Prediction prediction =
      sim::simulate(plan, core::resolve_profile(plan.cluster.profile));
  const int64_t plan_id =
      store.insert_predicted_plans({{core::plan_row(plan, ""), sim::prediction_row(0, prediction)}})
          .front();
  return {plan_id, store.predictions_for_plan(plan_id).back().id};
}

std::vector<core::StepRow> steps_of(int64_t first, int64_t last, double step_time_s) {
  std::vector<core::StepRow> steps;
  for (int64_t step = first; step <= last; ++step)
    steps.push_back(
        {step, 5.0 - 0.05 * double(step), step_time_s, 1000.0 / step_time_s, 3e-4, 1.0});
  return steps;
}

// A run of 4 devices that failed at step 10 and went on as attempt 2 on 2 devices to step 20.
int64_t two_attempt_run(core::Store& store) {
  const auto [plan_a, prediction_a] = insert_predicted(store, loom_tiny_four_device_plan());
  const auto [plan_b, prediction_b] = insert_predicted(store, two_device_plan());
  core::RunRow run;
  run.plan_id = plan_a;
  run.prediction_id = prediction_a;
  run.backend = "cpu";
  run.profile_name = "cpu-epyc-2core-vm";
  const int64_t id = store.begin_run(run);
  store.append_steps(id, steps_of(1, 10, 0.020));
  store.finish_attempt(id, core::RunStatus::failed, "rank 3 exited with status 1");
  core::RunAttemptRow attempt;
  attempt.run_id = id;
  attempt.plan_id = plan_b;
  attempt.prediction_id = prediction_b;
  attempt.devices = 2;
  attempt.start_step = 11;
  store.begin_attempt(attempt);
  store.append_steps(id, steps_of(11, 20, 0.024));
  store.finish_run(id, core::RunStatus::completed, "");
  return id;
}

// A 4-device run that failed, its run_json as given.
int64_t failed_run(core::Store& store, const std::string& run_json = "{}") {
  const auto [plan_id, prediction_id] = insert_predicted(store, loom_tiny_four_device_plan());
  core::RunRow run;
  run.plan_id = plan_id;
  run.prediction_id = prediction_id;
  run.backend = "cpu";
  run.profile_name = "cpu-epyc-2core-vm";
  run.run_json = run_json;
  const int64_t id = store.begin_run(run);
  store.append_steps(id, steps_of(1, 12, 0.020));
  store.finish_run(id, core::RunStatus::failed, "rank 2 exited with status 1");
  return id;
}

double measured_step_time_s(const RunsView& view) {
  const auto& comparison = view.comparisonModel()->comparison();
  if (!comparison || comparison->rows.empty() || !comparison->rows.front().measured) return 0;
  return *comparison->rows.front().measured;
}

// The re-planned plans written next to the fixture's directory.
QStringList written_plans(const CheckpointFixture& fixture) {
  const QFileInfo dir(QString::fromStdString(fixture.dir().string()));
  return QDir(dir.absolutePath())
      .entryList({dir.fileName() + "-replan-*"}, QDir::Files, QDir::Name);
}

void remove_written_plans(const CheckpointFixture& fixture) {
  const QFileInfo dir(QString::fromStdString(fixture.dir().string()));
  for (const QString& name : written_plans(fixture)) QFile::remove(dir.absolutePath() + "/" + name);
}

TEST(RunsAttempts, ARePlannedRunListsItsAttemptsAndComparesTheOneChosen) {
  const QString store_path = store_for_test();
  int64_t run_id = 0, single_id = 0;
  {
    core::Store store = core::Store::open(store_path.toStdString());
    run_id = two_attempt_run(store);
    single_id = failed_run(store);
  }
  RunsView view;
  view.resize(1400, 900);
  view.setStorePath(store_path);
  view.selectRun(run_id);
  ASSERT_EQ(view.attemptCount(), 2);
  QTableWidget* table = view.attemptsTable();
  EXPECT_TRUE(table->isVisibleTo(&view));
  ASSERT_EQ(table->rowCount(), 2);
  EXPECT_EQ(table->item(0, 1)->text(), "tp 1 · pp 2 · dp 2");
  EXPECT_EQ(table->item(1, 1)->text(), "tp 1 · pp 2 · dp 1");
  EXPECT_EQ(table->item(0, 2)->text(), "4");
  EXPECT_EQ(table->item(1, 2)->text(), "2");
  EXPECT_EQ(table->item(0, 3)->text(), "1–10");
  EXPECT_EQ(table->item(1, 3)->text(), "11–20");
  EXPECT_EQ(table->item(0, 4)->text(), "failed");
  EXPECT_EQ(table->item(0, 5)->text(), "rank 3 exited with status 1");
  EXPECT_EQ(table->item(1, 4)->text(), "completed");

  // By default the last attempt, as `loom compare` does.
  EXPECT_EQ(view.comparedAttempt(), 2) << view.comparisonTitle().toStdString();
  EXPECT_NEAR(measured_step_time_s(view), 0.024, 1e-9);
  EXPECT_THAT(view.comparisonTitle().toStdString(), HasSubstr("Attempt 2 of 2"));
  EXPECT_THAT(view.comparisonTitle().toStdString(), HasSubstr("--attempt 2"));
  const double predicted_last = view.comparisonModel()->comparison()->rows.front().predicted;
  EXPECT_EQ(table->currentRow(), 1);
  test::save_screenshot(view, "runs-attempts");

  // Choosing attempt 1 in the table compares its own steps with its own plan's prediction.
  table->setCurrentCell(0, 0);
  EXPECT_EQ(view.comparedAttempt(), 1);
  EXPECT_NEAR(measured_step_time_s(view), 0.020, 1e-9);
  EXPECT_THAT(view.comparisonTitle().toStdString(),
              HasSubstr("Attempt 1 of 2 (failed: rank 3 exited"));
  EXPECT_NE(view.comparisonModel()->comparison()->rows.front().predicted, predicted_last);
  EXPECT_EQ(table->currentRow(), 0);
  // A refresh keeps the attempt chosen.
  view.refresh();
  EXPECT_EQ(view.comparedAttempt(), 1);
  test::save_screenshot(view, "runs-attempt-1");

  // A run of one attempt looks as it always has.
  view.selectRun(single_id);
  EXPECT_EQ(view.attemptCount(), 1);
  EXPECT_FALSE(table->isVisibleTo(&view));
  EXPECT_THAT(view.comparisonTitle().toStdString(), Not(HasSubstr("Attempt")));
  view.selectRun(run_id);
  EXPECT_EQ(view.comparedAttempt(), 2);  // a run chosen again starts from its last attempt
}

TEST(RunsReplan, AFailedRunIsRePlannedForTheDevicesLeftAndHandedToExecuteWithResume) {
  CheckpointFixture fixture("gui_replan");
  fixture.add_step(10, loom_tiny_four_device_plan());
  remove_written_plans(fixture);
  const QString checkpoint_dir = QString::fromStdString(fixture.dir().string());
  const QString store_path = store_for_test();
  int64_t run_id = 0, completed_id = 0;
  {
    core::Store store = core::Store::open(store_path.toStdString());
    run_id = failed_run(store);
    completed_id = two_attempt_run(store);
  }
  MainWindow window(store_path);
  RunsView& view = *window.runsView();
  auto* replan_button = view.findChild<QPushButton*>("replan_and_resume");
  ASSERT_NE(replan_button, nullptr);
  view.selectRun(completed_id);
  EXPECT_FALSE(replan_button->isEnabled());  // a completed run has nothing to continue
  view.selectRun(run_id);
  EXPECT_TRUE(replan_button->isEnabled());
  EXPECT_EQ(view.devicesLeftOf(run_id), 3);
  EXPECT_EQ(view.recordedCheckpointDir(run_id), "");

  // Not recorded in the run: the directory is asked for.
  int asked = 0;
  view.setDirectoryChooser([&](QWidget*, const QString&) {
    ++asked;
    return checkpoint_dir;
  });
  ReplanDialog* dialog = view.openReplanDialog(run_id);
  ASSERT_NE(dialog, nullptr);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(dialog->devices(), 3);
  EXPECT_EQ(dialog->checkpointDir(), checkpoint_dir);
  EXPECT_FALSE(dialog->resumeButton()->isEnabled());
  ASSERT_TRUE(dialog->replan()) << view.lastMessage().toStdString();
  EXPECT_TRUE(dialog->resumeButton()->isEnabled());
  // loom-tiny on 3 devices: dp 3 does not divide the global batch 8, but 3 pipeline stages with an
  // uneven split of its 4 layers keep it.
  EXPECT_THAT(dialog->resultText().toStdString(), HasSubstr("tp 1 · pp 3 (layers "));
  EXPECT_THAT(dialog->resultText().toStdString(), HasSubstr("global batch 8, on 3 devices"));
  EXPECT_THAT(dialog->resultText().toStdString(), Not(HasSubstr("has no valid plan")));
  EXPECT_TRUE(written_plans(fixture).isEmpty());  // nothing written before the user says so
  test::save_screenshot(*dialog, "runs-replan-dialog", QSize(760, 360));

  dialog->resumeButton()->click();
  QCoreApplication::processEvents();
  const QString written = checkpoint_dir + "-replan-3dev.json";
  ASSERT_TRUE(QFileInfo::exists(written)) << view.lastMessage().toStdString();
  const core::Plan plan = core::read_plan_file(written.toStdString());
  EXPECT_EQ(plan.cluster.world_size(), 3);
  EXPECT_EQ(plan.parallel.pipeline_parallel, 3);
  EXPECT_FALSE(plan.even_layer_split());
  EXPECT_EQ(plan.training.global_batch_size, 8);
  EXPECT_EQ(plan.model, loom_tiny_four_device_plan().model);
  // Execute takes it, to run with --checkpoint-dir DIR --resume.
  ExecuteView& execute = *window.executeView();
  EXPECT_EQ(window.tabs()->currentWidget(), &execute);
  EXPECT_TRUE(execute.resume());
  EXPECT_EQ(execute.checkpointDir(), checkpoint_dir);
  EXPECT_THAT(execute.commandLine().toStdString(),
              HasSubstr("--checkpoint-dir " + fixture.dir().string()));
  EXPECT_THAT(execute.commandLine().toStdString(), HasSubstr("--resume"));
  EXPECT_FALSE(execute.isRunning());
  EXPECT_THAT(view.statusText().toStdString(), HasSubstr(written.toStdString()));
  test::save_screenshot(execute, "execute-resume");

  // Again: a fresh name, the first file left as it was.
  QFile first(written);
  ASSERT_TRUE(first.open(QIODevice::ReadOnly));
  const QByteArray first_text = first.readAll();
  first.close();
  const std::optional<RunsView::ResumePlan> again = view.replanAndResume(3, checkpoint_dir);
  ASSERT_TRUE(again) << view.lastMessage().toStdString();
  EXPECT_EQ(again->plan_path, checkpoint_dir + "-replan-3dev-2.json");
  ASSERT_TRUE(first.open(QIODevice::ReadOnly));
  EXPECT_EQ(first.readAll(), first_text);
  first.close();

  // A plan chosen afterwards from Results is a fresh run, not a resume.
  execute.setPlan(loom_tiny_four_device_plan());
  EXPECT_FALSE(execute.resume());
  EXPECT_THAT(execute.commandLine().toStdString(), Not(HasSubstr("--resume")));
  remove_written_plans(fixture);
}

TEST(RunsReplan, ARecordedCheckpointDirectoryIsUsedWithoutAsking) {
  CheckpointFixture fixture("gui_replan_recorded");
  fixture.add_step(10, loom_tiny_four_device_plan());
  const QString store_path = store_for_test();
  int64_t run_id = 0;
  {
    core::Store store = core::Store::open(store_path.toStdString());
    run_id = failed_run(store, core::Json{{"checkpoint_dir", fixture.dir().string()}}.dump());
  }
  RunsView view;
  view.setStorePath(store_path);
  view.selectRun(run_id);
  EXPECT_EQ(view.recordedCheckpointDir(run_id), QString::fromStdString(fixture.dir().string()));
  view.setDirectoryChooser([](QWidget*, const QString&) {
    ADD_FAILURE() << "asked for a directory the run recorded";
    return QString();
  });
  ReplanDialog* dialog = view.openReplanDialog(run_id);
  ASSERT_NE(dialog, nullptr);
  EXPECT_EQ(dialog->checkpointDir(), QString::fromStdString(fixture.dir().string()));
  dialog->setDevices(2);
  ASSERT_TRUE(dialog->replan());
  EXPECT_THAT(dialog->resultText().toStdString(),
              Not(HasSubstr("Note")));  // 8 divides on 2 devices
  dialog->reject();
  EXPECT_TRUE(written_plans(fixture).isEmpty());  // cancelled: nothing written

  // No directory chosen: no dialog.
  RunsView unrecorded;
  core::Store store = core::Store::open(store_path.toStdString());
  const int64_t other = failed_run(store);
  unrecorded.setStorePath(store_path);
  unrecorded.setDirectoryChooser([](QWidget*, const QString&) { return QString(); });
  EXPECT_EQ(unrecorded.openReplanDialog(other), nullptr);
}

TEST(RunsReplan, BadInputsEndInOneMessageAndWriteNothing) {
  CheckpointFixture fixture("gui_replan_bad");
  CheckpointFixture empty("gui_replan_empty");
  CheckpointFixture torn("gui_replan_torn");
  fixture.add_step(10, loom_tiny_four_device_plan());
  const QString store_path = store_for_test();
  {
    core::Store store = core::Store::open(store_path.toStdString());
    failed_run(store);
  }
  RunsView view;
  view.setStorePath(store_path);
  int resumed = 0;
  QObject::connect(&view, &RunsView::resumeRequested, [&] { ++resumed; });

  const auto expect_refused = [&](int64_t devices, const QString& dir, const std::string& says) {
    SCOPED_TRACE(dir.toStdString() + " on " + std::to_string(devices));
    EXPECT_FALSE(view.replanAndResume(devices, dir));
    const QString message = take_message_box(view);
    EXPECT_THAT(message.toStdString(), HasSubstr(says));
    EXPECT_FALSE(message.contains('\n')) << message.toStdString();
    EXPECT_EQ(view.lastMessage(), message);
  };
  const QString dir = QString::fromStdString(fixture.dir().string());
  expect_refused(0, dir, "devices");
  expect_refused(3, QString::fromStdString(empty.dir().string()), "no checkpoint in");
  torn.add_step(10, loom_tiny_four_device_plan());
  torn.tear_manifest(10);
  expect_refused(3, QString::fromStdString(torn.dir().string()), "step-000010");
  expect_refused(3, dir + "/missing", "missing");
  expect_refused(3, "", "No checkpoint directory");
  EXPECT_TRUE(written_plans(fixture).isEmpty());
  EXPECT_TRUE(written_plans(empty).isEmpty());
  EXPECT_TRUE(written_plans(torn).isEmpty());
  EXPECT_EQ(resumed, 0);
}

}  // namespace
}  // namespace loom::gui::attempts_and_replan
