// The Runs view's import and calibration (issue 21): Megatron-LM and llm.c logs imported through
// the view (tests/fixtures/logs) appear as runs with their source; a bad log is refused in a
// message box and stores nothing; a profile calibrated from selected runs is shown before → after
// and saved, and reads back with core::resolve_profile.

#include "gui_test_support.hpp"

#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"
#include "core/store.hpp"
#include "core/store_rows.hpp"
#include "gui/calibration_dialog.hpp"
#include "gui/import_log_dialog.hpp"
#include "gui/models/comparison_model.hpp"
#include "gui/models/runs_model.hpp"
#include "gui/runs_view.hpp"
#include "simulator/prediction.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <QComboBox>
#include <QCoreApplication>
#include <QDialogButtonBox>
#include <QFile>
#include <QMessageBox>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>

#include <fstream>

namespace loom::gui {
namespace {

using ::testing::HasSubstr;

QString log_fixture(const char* name) {
  return QStringLiteral(LOOM_FIXTURES_DIR "/logs/") + name;
}

QString store_for_test() {
  const QString path =
      test::scratch_dir() + "/" +
      QString::fromUtf8(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".db";
  QFile::remove(path);
  return path;
}

size_t runs_in(const QString& store_path) {
  return core::Store::open(store_path.toStdString()).list_runs().size();
}

// The message box the view opened last (window-modal, not blocking), closed after reading it.
QString take_message_box(RunsView& view) {
  const QList<QMessageBox*> boxes = view.findChildren<QMessageBox*>();
  if (boxes.isEmpty()) return {};
  const QString text = boxes.back()->text();
  for (QMessageBox* box : boxes) box->close();
  QCoreApplication::processEvents();
  return text;
}

TEST(RunsImport, AMegatronLogWithItsArgumentsBecomesASelectedRunFromMegatron) {
  const QString store = store_for_test();
  RunsView view;
  view.setStorePath(store);
  const std::optional<plan::LogImportResult> imported =
      view.importLog(log_fixture("megatron_core_0_9.log"));
  ASSERT_TRUE(imported) << view.lastMessage().toStdString();
  EXPECT_EQ(imported->source, "megatron");
  EXPECT_TRUE(imported->plan_from_arguments);
  EXPECT_EQ(imported->profile_name, plan::kDefaultImportProfile);

  ASSERT_EQ(view.runsModel()->rowCount(), 1);
  const int row = view.runsModel()->rowOfRun(imported->run_id);
  ASSERT_GE(row, 0);
  EXPECT_EQ(view.runsModel()->index(row, RunsModel::source).data().toString(), "Megatron-LM");
  EXPECT_EQ(view.runsModel()->index(row, RunsModel::source).data(RunsModel::SortRole).toString(),
            "megatron");
  EXPECT_EQ(view.selectedRun(), imported->run_id);
  EXPECT_THAT(view.statusText().toStdString(), HasSubstr("as run 1"));
  EXPECT_THAT(view.comparisonTitle().toStdString(), HasSubstr("Megatron-LM"));

  // Megatron times no tensor-parallel communication: that row is not measured.
  ComparisonModel* comparison = view.comparisonModel();
  ASSERT_TRUE(comparison->comparison());
  bool not_measured = false;
  for (int r = 0; r < comparison->rowCount(); ++r)
    not_measured |=
        comparison->index(r, ComparisonModel::measured).data().toString() == "not measured";
  EXPECT_TRUE(not_measured);
  test::save_screenshot(view, "runs-imported-megatron");
}

TEST(RunsImport, AnLlmcLogWithItsPlanAndAChosenProfile) {
  const QString store = store_for_test();
  RunsView view;
  view.setStorePath(store);
  const std::optional<plan::LogImportResult> imported = view.importLog(
      log_fixture("llmc_gpt2_cu.log"), log_fixture("llmc_gpt2_124m_plan.json"), "a100-80gb-dgx");
  ASSERT_TRUE(imported) << view.lastMessage().toStdString();
  EXPECT_EQ(imported->source, "llmc");
  EXPECT_EQ(imported->profile_name, "a100-80gb-dgx");
  const int row = view.runsModel()->rowOfRun(imported->run_id);
  ASSERT_GE(row, 0);
  EXPECT_EQ(view.runsModel()->index(row, RunsModel::source).data().toString(), "llm.c");
  EXPECT_EQ(core::Store::open(store.toStdString()).run(imported->run_id).source, "llmc");
}

TEST(RunsImport, ABadLogIsRefusedInAMessageBoxAndStoresNothing) {
  const QString store = store_for_test();
  RunsView view;
  view.setStorePath(store);
  ASSERT_TRUE(view.importLog(log_fixture("megatron_core_0_9.log")));

  EXPECT_FALSE(view.importLog(log_fixture("megatron_garbled.log")));
  EXPECT_THAT(take_message_box(view).toStdString(),
              HasSubstr("megatron_garbled.log:101: expected a number"));

  // Not a log of either framework; an llm.c log without its plan; a plan of another model.
  const QString text = test::scratch_dir() + "/notes.log";
  std::ofstream(text.toStdString()) << "hello\nworld\n";
  EXPECT_FALSE(view.importLog(text));
  EXPECT_FALSE(take_message_box(view).isEmpty());
  EXPECT_FALSE(view.importLog(log_fixture("llmc_gpt2_cu.log")));
  EXPECT_THAT(view.lastMessage().toStdString(), HasSubstr("plan"));
  take_message_box(view);
  EXPECT_FALSE(
      view.importLog(log_fixture("megatron_core_0_9.log"), log_fixture("other_model_plan.json")));
  take_message_box(view);

  EXPECT_EQ(runs_in(store), 1u);
  EXPECT_EQ(view.runsModel()->rowCount(), 1);
  EXPECT_FALSE(view.lastMessage().contains('\n'))
      << "one line: " << view.lastMessage().toStdString();
}

TEST(RunsImport, TheImportDialogAsksForThePlanAnLlmcLogNeeds) {
  ImportLogDialog dialog(log_fixture("llmc_gpt2_cu.log"), "llmc", true);
  QPushButton* import = dialog.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Ok);
  EXPECT_FALSE(import->isEnabled()) << "no plan yet";
  dialog.setPlanPath(log_fixture("llmc_gpt2_124m_plan.json"));
  EXPECT_TRUE(import->isEnabled());
  EXPECT_EQ(dialog.profile(), "") << "the import's default";
  test::save_screenshot(dialog, "import-log-dialog", QSize(620, 220));

  ImportLogDialog megatron(log_fixture("megatron_core_0_9.log"), "megatron", false);
  EXPECT_TRUE(megatron.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Ok)->isEnabled());
  QComboBox* profile = megatron.findChild<QComboBox*>();
  profile->setCurrentIndex(profile->findText("a100-80gb-dgx"));
  EXPECT_EQ(megatron.profile(), "a100-80gb-dgx");
}

// Six runs "measured" on the CPU profile with its GEMM table 30 % slower (as the CLI's test).
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

std::vector<qint64> store_measured_runs(const QString& store_path) {
  core::Store store = core::Store::open(store_path.toStdString());
  core::Profile truth = core::resolve_profile("cpu-epyc-2core-vm");
  truth.calibration.emplace().table_time_scales.gemm = 1.3;
  const std::vector<core::Plan> plans = {cpu_plan(1, 1, 1, 1, 1), cpu_plan(1, 1, 1, 1, 4),
                                         cpu_plan(2, 1, 1, 2, 2), cpu_plan(1, 2, 1, 2, 1),
                                         cpu_plan(1, 1, 2, 2, 2), cpu_plan(2, 1, 1, 2, 4)};
  const double noise[] = {0.01, -0.008, 0.004, -0.01, 0.006, -0.002};
  std::vector<qint64> ids;
  for (size_t i = 0; i < plans.size(); ++i) {
    sim::SimulationOptions options;
    options.record_timeline = false;
    const double step_s = sim::simulate(plans[i], truth, options).step_time_s * (1 + noise[i]);
    core::RunRow run;
    run.plan_id = store.insert_plan(core::plan_row(plans[i], "plan-" + std::to_string(i + 1)));
    run.backend = "cpu";
    run.profile_name = "cpu-epyc-2core-vm";
    const int64_t id = store.begin_run(run);
    std::vector<core::StepRow> steps;
    for (int64_t step = 1; step <= 5; ++step)
      steps.push_back({step, 5.0, step <= 2 ? 10 * step_s : step_s, 1.0, 6e-4, {}});
    store.append_steps(id, steps);
    store.finish_run(id, core::RunStatus::completed, "");
    ids.push_back(id);
  }
  return ids;
}

TEST(RunsCalibrate, SelectedRunsCalibrateTheirProfileAndTheDialogSavesIt) {
  const QString store = store_for_test();
  const std::vector<qint64> ids = store_measured_runs(store);
  RunsView view;
  view.setStorePath(store);
  ASSERT_EQ(view.runsModel()->rowCount(), 6);
  view.selectRuns(ids);
  EXPECT_EQ(view.selectedRuns().size(), 6u);
  EXPECT_EQ(view.storedProfileOf(view.selectedRuns()), "cpu-epyc-2core-vm");
  test::save_screenshot(view, "runs-selected-for-calibration");

  CalibrationDialog* dialog = view.calibrateRuns(view.selectedRuns(), "cpu-epyc-2core-vm", 2);
  ASSERT_NE(dialog, nullptr) << view.lastMessage().toStdString();
  const sim::CalibrationResult& result = dialog->result();
  EXPECT_EQ(dialog->parametersTable()->rowCount(), int(result.parameters.size()));
  EXPECT_EQ(dialog->runsTable()->rowCount(), 6);
  bool gemm_fitted = false, some_not_determined = false;
  for (int r = 0; r < dialog->parametersTable()->rowCount(); ++r) {
    const QString name = dialog->parametersTable()->item(r, CalibrationDialog::parameter)->text();
    const QString after = dialog->parametersTable()->item(r, CalibrationDialog::after)->text();
    if (name == "table_time_scales.gemm") {
      gemm_fitted = true;
      EXPECT_TRUE(after.startsWith("1.3")) << after.toStdString();
      EXPECT_THAT(after.toStdString(), HasSubstr("±"));
    }
    if (after == "not determined") {
      some_not_determined = true;
      EXPECT_FALSE(dialog->parametersTable()->item(r, CalibrationDialog::note)->text().isEmpty());
    }
  }
  EXPECT_TRUE(gemm_fitted);
  EXPECT_TRUE(some_not_determined);
  int held_out = 0;
  for (int r = 0; r < 6; ++r)
    held_out += dialog->runsTable()->item(r, CalibrationDialog::role)->text() == "held out";
  EXPECT_EQ(held_out, 2);
  EXPECT_THAT(dialog->errorsText().toStdString(), HasSubstr("2 runs held out"));
  ASSERT_TRUE(result.holdout_step_error_after_percent);
  EXPECT_LT(*result.holdout_step_error_after_percent, *result.holdout_step_error_before_percent);

  const QString out = test::scratch_dir() + "/my-cpu.json";
  dialog->saveProfile(out);
  const core::Profile saved = core::resolve_profile(out.toStdString());
  EXPECT_EQ(saved.name, "my-cpu");
  EXPECT_EQ(saved.provenance, "calibrated");
  ASSERT_TRUE(saved.calibration);
  EXPECT_EQ(saved.calibration->base_profile, "cpu-epyc-2core-vm");
  EXPECT_NEAR(saved.calibration->table_time_scales.gemm, 1.3, 0.05);
  // Kept in the store too, and offered as a base from there.
  ASSERT_FALSE(core::Store::open(store.toStdString()).list_profiles().empty());
  EXPECT_EQ(core::Store::open(store.toStdString()).list_profiles().back().name, "my-cpu");
  CalibrationDialog* again = view.calibrateRuns(ids, "my-cpu", 0);
  ASSERT_NE(again, nullptr) << view.lastMessage().toStdString();
  EXPECT_EQ(again->result().profile.calibration->base_profile, "my-cpu");
  again->close();
  // Neither the store nor (below) the base profile's file is written over.
  EXPECT_THROW(dialog->saveProfile(store), Error);
  test::save_screenshot(*dialog, "calibration-dialog", QSize(1200, 760));
  dialog->close();
}

TEST(RunsCalibrate, TheSetupDialogOffersTheRunsProfileFirstAndBoundsTheHoldout) {
  CalibrationSetupDialog setup("cpu-epyc-2core-vm", 5);
  EXPECT_EQ(setup.baseProfile(), "cpu-epyc-2core-vm");
  EXPECT_EQ(setup.holdout(), 0);
  EXPECT_EQ(setup.findChild<QSpinBox*>()->maximum(), 3) << "at least 2 runs to fit";
  test::save_screenshot(setup, "calibration-setup-dialog", QSize(520, 200));
  CalibrationSetupDialog mixed("", 2, {"my-cluster"});
  EXPECT_EQ(mixed.baseProfile(), "my-cluster") << "a profile the store keeps, when the runs share none";
  EXPECT_EQ(mixed.findChild<QSpinBox*>()->maximum(), 0);
}

TEST(RunsCalibrate, ABaseProfileFileIsNeverWrittenOver) {
  const QString store = store_for_test();
  const std::vector<qint64> ids = store_measured_runs(store);
  const QString base = test::scratch_dir() + "/base-cpu.json";
  const std::string base_text =
      core::to_json(core::resolve_profile("cpu-epyc-2core-vm")).dump(2) + "\n";
  std::ofstream(base.toStdString()) << base_text;
  RunsView view;
  view.setStorePath(store);
  CalibrationDialog* dialog = view.calibrateRuns(ids, base, 0);
  ASSERT_NE(dialog, nullptr) << view.lastMessage().toStdString();
  EXPECT_THAT(dialog->errorsText().toStdString(), HasSubstr("No run held out"));
  EXPECT_THROW(dialog->saveProfile(base), Error);
  std::ifstream in(base.toStdString());
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), base_text);
  dialog->close();
}

TEST(RunsCalibrate, RunsThatCannotBeCalibratedGiveOneMessage) {
  const QString store = store_for_test();
  const std::vector<qint64> ids = store_measured_runs(store);
  RunsView view;
  view.setStorePath(store);
  // A run still running; a holdout that leaves one run; an unknown profile.
  core::Store writer = core::Store::open(store.toStdString());
  core::RunRow running;
  running.plan_id = writer.run(ids[0]).plan_id;
  running.backend = "cpu";
  const qint64 running_id = writer.begin_run(running);
  EXPECT_EQ(view.calibrateRuns({ids[0], ids[1], running_id}, "cpu-epyc-2core-vm", 0), nullptr);
  EXPECT_THAT(view.lastMessage().toStdString(), HasSubstr(std::to_string(running_id)));
  take_message_box(view);
  EXPECT_EQ(view.calibrateRuns({ids[0], ids[1], ids[2]}, "cpu-epyc-2core-vm", 2), nullptr);
  EXPECT_THAT(view.lastMessage().toStdString(), HasSubstr("holdout"));
  take_message_box(view);
  EXPECT_EQ(view.calibrateRuns({ids[0], ids[1]}, "no-such-profile", 0), nullptr);
  EXPECT_THAT(view.lastMessage().toStdString(), HasSubstr("no-such-profile"));
  take_message_box(view);
}

}  // namespace
}  // namespace loom::gui
