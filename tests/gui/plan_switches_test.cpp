// The attention backend and the communication overlaps in the GUI: their short and long texts,
// which overlap the core's rules allow (and the core's reason when not), the editor's controls
// enabled and disabled by those rules and writing into the plan, and the Plan detail view
// simulating the switched plan and handing it to Execute.

#include "gui_test_support.hpp"

#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"
#include "gui/execute_view.hpp"
#include "gui/main_window.hpp"
#include "gui/models/breakdown_model.hpp"
#include "gui/models/plan_switches.hpp"
#include "gui/plan_detail_view.hpp"
#include "gui/plan_switches_editor.hpp"

#include <gtest/gtest.h>

#include <QCheckBox>
#include <QComboBox>
#include <QFile>
#include <QImage>
#include <QLabel>
#include <QScrollBar>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTableView>

namespace loom::gui {
namespace {

using test::scratch_dir;
using test::wait_until;

// GPT-3 1.3B on one DGX A100 node: tp 2, dp 4, the switches the test says.
core::Plan gpt3_1_3b_tp2(bool sequence_parallel, bool distributed_optimizer) {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt3-1.3b").spec;
  plan.cluster.nodes = 1;
  plan.cluster.devices_per_node = 8;
  plan.cluster.profile = "a100-80gb-dgx";
  plan.parallel.tensor_parallel = 2;
  plan.parallel.micro_batch_size = 1;
  plan.parallel.sequence_parallel = sequence_parallel;
  plan.parallel.distributed_optimizer = distributed_optimizer;
  core::derive_data_parallel(plan);
  plan.training.dtype = core::DType::bf16;
  plan.training.train_iters = 100;
  plan.training.lr_warmup_iters = 10;
  plan.training.global_batch_size = 8 * plan.parallel.data_parallel;
  plan.validate();
  return plan;
}

TEST(PlanSwitches, AreShortInATableCellAndNamedInFullElsewhere) {
  core::ParallelPlan p;
  EXPECT_EQ(overlaps_text(p), "none");
  EXPECT_EQ(overlaps_description(p), "no overlap");
  p.overlap_grad_reduce = true;
  EXPECT_EQ(overlaps_text(p), "grad");
  p.overlap_param_gather = true;
  p.tp_comm_overlap = true;
  EXPECT_EQ(overlaps_text(p), "grad+param+tp");
  p.ddp_bucket_size = 20'000'000;
  EXPECT_EQ(
      overlaps_description(p),
      "overlap-grad-reduce, overlap-param-gather, tp-comm-overlap; ddp-bucket-size 20,000,000");
  p.overlap_grad_reduce = p.overlap_param_gather = false;
  EXPECT_EQ(overlaps_text(p), "tp");
  EXPECT_EQ(attention_backend_text(core::AttentionBackend::flash), "flash");
  EXPECT_EQ(attention_backend_text(core::AttentionBackend::unfused), "unfused");
}

TEST(PlanSwitches, EachOverlapCanBeTurnedOnOnlyWhenWhatItNeedsIsThere) {
  const core::Plan bare = gpt3_1_3b_tp2(false, false);
  // overlap-grad-reduce needs nothing else.
  EXPECT_EQ(why_switch_unavailable(bare, OverlapSwitch::overlap_grad_reduce), std::nullopt);
  // The reasons are the core's messages, naming what is missing.
  const auto tp = why_switch_unavailable(bare, OverlapSwitch::tp_comm_overlap);
  ASSERT_TRUE(tp.has_value());
  EXPECT_NE(tp->find("needs sequence-parallel=true"), std::string::npos) << *tp;
  const auto gather = why_switch_unavailable(bare, OverlapSwitch::overlap_param_gather);
  ASSERT_TRUE(gather.has_value());
  EXPECT_NE(gather->find("needs use-distributed-optimizer=true"), std::string::npos) << *gather;
  const auto bucket = why_switch_unavailable(bare, OverlapSwitch::ddp_bucket_size);
  ASSERT_TRUE(bucket.has_value());
  EXPECT_NE(bucket->find("without overlap-grad-reduce=true"), std::string::npos) << *bucket;

  core::Plan ready = gpt3_1_3b_tp2(true, true);
  EXPECT_EQ(why_switch_unavailable(ready, OverlapSwitch::tp_comm_overlap), std::nullopt);
  // With the distributed optimizer the parameter gather still waits for overlap-grad-reduce.
  const auto still = why_switch_unavailable(ready, OverlapSwitch::overlap_param_gather);
  ASSERT_TRUE(still.has_value());
  EXPECT_NE(still->find("needs overlap-grad-reduce=true"), std::string::npos) << *still;
  ready.parallel.overlap_grad_reduce = true;
  EXPECT_EQ(why_switch_unavailable(ready, OverlapSwitch::overlap_param_gather), std::nullopt);
  EXPECT_EQ(why_switch_unavailable(ready, OverlapSwitch::ddp_bucket_size), std::nullopt);
}

TEST(PlanSwitches, TurningOffGradReduceTurnsOffWhatNeedsIt) {
  core::Plan plan = gpt3_1_3b_tp2(true, true);
  plan.parallel.overlap_grad_reduce = true;
  plan.parallel.overlap_param_gather = true;
  plan.parallel.tp_comm_overlap = true;
  plan.parallel.ddp_bucket_size = 20'000'000;
  plan.validate();
  EXPECT_EQ(without_unmet_overlaps(plan), plan) << "a valid plan is left as it is";
  plan.parallel.overlap_grad_reduce = false;
  const core::Plan cleaned = without_unmet_overlaps(plan);
  EXPECT_FALSE(cleaned.parallel.overlap_param_gather);
  EXPECT_EQ(cleaned.parallel.ddp_bucket_size, std::nullopt);
  EXPECT_TRUE(cleaned.parallel.tp_comm_overlap)
      << "tp-comm-overlap does not need overlap-grad-reduce";
  EXPECT_NO_THROW(cleaned.validate());
}

TEST(PlanSwitchesEditor, ControlsFollowTheRulesAndWriteIntoThePlan) {
  PlanSwitchesEditor editor;
  // Before a plan, nothing can be switched.
  EXPECT_FALSE(editor.overlapGradReduceBox()->isEnabled());
  EXPECT_FALSE(editor.attentionBackendBox()->isEnabled());
  EXPECT_EQ(editor.plan(), nullptr);

  // Without sequence parallelism tp-comm-overlap is disabled and its tooltip says why.
  editor.setPlan(gpt3_1_3b_tp2(false, true));
  QSignalSpy edited(&editor, &PlanSwitchesEditor::planEdited);
  EXPECT_TRUE(editor.overlapGradReduceBox()->isEnabled());
  EXPECT_FALSE(editor.tpCommOverlapBox()->isEnabled());
  EXPECT_TRUE(editor.tpCommOverlapBox()->toolTip().contains("needs sequence-parallel=true"))
      << editor.tpCommOverlapBox()->toolTip().toStdString();
  EXPECT_FALSE(editor.overlapParamGatherBox()->isEnabled());
  EXPECT_TRUE(editor.overlapParamGatherBox()->toolTip().contains("needs overlap-grad-reduce=true"));
  EXPECT_FALSE(editor.bucketSizeBox()->isEnabled());
  EXPECT_EQ(editor.attentionBackendBox()->currentText(), "unfused");
  EXPECT_EQ(edited.count(), 0) << "showing a plan is not an edit";

  // overlap-grad-reduce opens the parameter gather and the bucket size.
  editor.overlapGradReduceBox()->click();
  ASSERT_EQ(edited.count(), 1);
  EXPECT_TRUE(edited.last().at(0).value<core::Plan>().parallel.overlap_grad_reduce);
  EXPECT_TRUE(editor.plan()->parallel.overlap_grad_reduce);
  EXPECT_TRUE(editor.overlapParamGatherBox()->isEnabled());
  EXPECT_FALSE(editor.overlapParamGatherBox()->toolTip().contains("Unavailable"));
  EXPECT_TRUE(editor.bucketSizeBox()->isEnabled());
  EXPECT_TRUE(editor.bucketSizeBox()->specialValueText().contains("40,000,000"))
      << editor.bucketSizeBox()->specialValueText().toStdString();

  editor.overlapParamGatherBox()->click();
  editor.bucketSizeBox()->setValue(20'000'000);
  editor.attentionBackendBox()->setCurrentText("flash");
  const core::Plan switched = *editor.plan();
  EXPECT_TRUE(switched.parallel.overlap_param_gather);
  EXPECT_EQ(switched.parallel.ddp_bucket_size, 20'000'000);
  EXPECT_EQ(switched.parallel.attention_backend, core::AttentionBackend::flash);
  EXPECT_NO_THROW(switched.validate());
  EXPECT_EQ(edited.count(), 4);

  // Turning overlap-grad-reduce off takes what needs it along, in the plan and on screen.
  editor.overlapGradReduceBox()->click();
  const core::Plan off = *editor.plan();
  EXPECT_FALSE(off.parallel.overlap_grad_reduce);
  EXPECT_FALSE(off.parallel.overlap_param_gather);
  EXPECT_EQ(off.parallel.ddp_bucket_size, std::nullopt);
  EXPECT_EQ(off.parallel.attention_backend, core::AttentionBackend::flash);
  EXPECT_FALSE(editor.overlapParamGatherBox()->isChecked());
  EXPECT_FALSE(editor.overlapParamGatherBox()->isEnabled());
  EXPECT_EQ(editor.bucketSizeBox()->value(), 0);
  EXPECT_FALSE(editor.bucketSizeBox()->isEnabled());
  EXPECT_NO_THROW(off.validate());

  // With sequence parallelism tp-comm-overlap can be switched on.
  editor.setPlan(gpt3_1_3b_tp2(true, true));
  EXPECT_TRUE(editor.tpCommOverlapBox()->isEnabled());
  EXPECT_FALSE(editor.tpCommOverlapBox()->isChecked());
  editor.tpCommOverlapBox()->click();
  EXPECT_TRUE(editor.plan()->parallel.tp_comm_overlap);

  editor.clear();
  EXPECT_FALSE(editor.tpCommOverlapBox()->isEnabled());
  EXPECT_FALSE(editor.bucketSizeBox()->isEnabled());
}

TEST(PlanSwitchesEditor, AnUntouchedBucketSizeAboveTheBoxKeepsItsValue) {
  // A plan file may hold a size above what an int box shows; other edits must not clip it.
  core::Plan plan = gpt3_1_3b_tp2(true, true);
  plan.parallel.overlap_grad_reduce = true;
  plan.parallel.ddp_bucket_size = int64_t(1) << 40;
  PlanSwitchesEditor editor;
  editor.setPlan(plan);
  editor.tpCommOverlapBox()->click();
  EXPECT_EQ(editor.plan()->parallel.ddp_bucket_size, int64_t(1) << 40);
}

// Shows `plan` on A100s and waits for its simulation.
void show_switched_and_wait(PlanDetailView& view, const core::Plan& plan) {
  view.showPlan(plan, core::resolve_profile("a100-80gb-dgx"));
  ASSERT_TRUE(wait_until([&] { return !view.isSimulating(); }));
  ASSERT_TRUE(view.hasPlan());
}

TEST(PlanDetailViewSwitches, SwitchingAnOverlapSimulatesAndExportsTheSwitchedPlan) {
  PlanDetailView view;
  show_switched_and_wait(view, gpt3_1_3b_tp2(true, true));
  PlanSwitchesEditor& editor = *view.switchesEditor();
  EXPECT_TRUE(editor.tpCommOverlapBox()->isEnabled());
  EXPECT_TRUE(view.summaryText().contains("attention unfused, overlap none"))
      << view.summaryText().toStdString();

  QSignalSpy shown(&view, &PlanDetailView::planShown);
  QSignalSpy edited(&view, &PlanDetailView::planEdited);
  editor.attentionBackendBox()->setCurrentText("flash");
  editor.overlapGradReduceBox()->click();
  editor.tpCommOverlapBox()->click();
  EXPECT_EQ(edited.count(), 3);
  ASSERT_TRUE(wait_until([&] { return !view.isSimulating(); }));
  // Only the last edit's simulation reaches the screen; it is the plan with all three switches.
  EXPECT_EQ(shown.count(), 1);
  ASSERT_NE(view.plan(), nullptr);
  EXPECT_EQ(view.plan()->parallel.attention_backend, core::AttentionBackend::flash);
  EXPECT_TRUE(view.plan()->parallel.overlap_grad_reduce);
  EXPECT_TRUE(view.plan()->parallel.tp_comm_overlap);
  EXPECT_TRUE(view.summaryText().contains("attention flash, overlap grad+tp"))
      << view.summaryText().toStdString();

  const QString path = scratch_dir() + "/switched-plan.json";
  view.exportPlanJson(path);
  const core::Plan read_back = core::read_plan_file(path.toStdString());
  EXPECT_EQ(read_back, *view.plan());
  EXPECT_NO_THROW(read_back.validate());
}

TEST(PlanDetailViewSwitches, Screenshot) {
  core::Plan plan = gpt3_1_3b_tp2(true, true);
  plan.parallel.attention_backend = core::AttentionBackend::flash;
  plan.parallel.overlap_grad_reduce = true;
  plan.parallel.overlap_param_gather = true;
  plan.parallel.tp_comm_overlap = true;
  PlanDetailView view;
  show_switched_and_wait(view, plan);
  const QString path = test::save_screenshot(view, "plan_detail_overlaps", QSize(1400, 900));
  const QImage shot(path);
  ASSERT_EQ(shot.size(), QSize(1400, 900));

  // The switches are on screen, checked as the plan has them, and drawn.
  const PlanSwitchesEditor& editor = *view.switchesEditor();
  ASSERT_TRUE(editor.isVisible());
  EXPECT_EQ(editor.attentionBackendBox()->currentText(), "flash");
  for (const QCheckBox* box :
       {editor.overlapGradReduceBox(), editor.overlapParamGatherBox(), editor.tpCommOverlapBox()}) {
    EXPECT_TRUE(box->isChecked() && box->isEnabled()) << box->text().toStdString();
    const QRect area(box->mapTo(&view, QPoint(0, 0)), box->size());
    EXPECT_TRUE(shot.rect().contains(area)) << box->text().toStdString();
  }
  // Every row of the breakdown, the hidden ones last, shows without scrolling.
  const QTableView* table = nullptr;
  for (const QTableView* candidate : view.findChildren<QTableView*>())
    if (candidate->model() && candidate->model()->rowCount() == BreakdownModel::category_count)
      table = candidate;
  ASSERT_NE(table, nullptr);
  ASSERT_TRUE(table->isVisible());
  EXPECT_EQ(table->verticalScrollBar()->maximum(), 0) << "the breakdown table scrolls";
  const QModelIndex last =
      table->model()->index(BreakdownModel::category_count - 1, BreakdownModel::category);
  EXPECT_EQ(last.data().toString(), "DP comm hidden (beside backward/forward)");
  EXPECT_TRUE(table->viewport()->rect().contains(table->visualRect(last)));
  // Nothing is drawn over the table: the note below it starts under its last row.
  const QLabel* note = nullptr;
  for (const QLabel* label : view.findChildren<QLabel*>())
    if (label->text().startsWith("Times of the critical")) note = label;
  ASSERT_NE(note, nullptr);
  EXPECT_GE(note->mapTo(&view, QPoint(0, 0)).y(),
            table->mapTo(&view, QPoint(0, table->height())).y())
      << "table " << table->height() << " px high, its minimum " << table->minimumHeight();
}

TEST(DesktopApp, ASwitchedPlanIsTheOneExecuteRuns) {
  MainWindow window(scratch_dir() + "/switched.db");
  const QString path = scratch_dir() + "/plan-to-switch.json";
  {
    QFile file(path);
    ASSERT_TRUE(file.open(QIODevice::WriteOnly));
    file.write(QByteArray::fromStdString(core::to_json(gpt3_1_3b_tp2(true, true)).dump(2)));
  }
  window.openPlanFile(path);
  PlanDetailView& detail = *window.detailView();
  ASSERT_TRUE(wait_until([&] { return detail.hasPlan(); }));
  detail.switchesEditor()->tpCommOverlapBox()->click();
  // The Execute view's plan summary names the overlap it will run with.
  bool named = false;
  for (const QLabel* label : window.executeView()->findChildren<QLabel*>())
    named =
        named || (label->text().contains("gpt3-1.3b") && label->text().contains("tp-comm-overlap"));
  EXPECT_TRUE(named);
}

}  // namespace
}  // namespace loom::gui
