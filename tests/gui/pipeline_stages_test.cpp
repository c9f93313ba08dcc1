// The plan detail view's pipeline stages table (issue 23): each stage's ranks, device group,
// layers and memory against its own group's capacity, for an uneven split on a mixed cluster, and
// the screenshot of such a plan (build/screenshots/plan_detail_uneven_mixed.png).

#include "core/profile.hpp"
#include "gui/memory_chart.hpp"
#include "gui/pipeline_stage_table.hpp"
#include "gui/plan_detail_view.hpp"
#include "detail_test_plans.hpp"
#include "gui_test_support.hpp"

#include <gtest/gtest.h>

#include <QSignalSpy>

namespace loom::gui {
namespace {

using test::make_plan;
using test::PlanShape;
using test::save_screenshot;
using test::wait_until;

// gpt3-13b (40 layers) with pp 4 on one A100 node then one H100 node: stages 0-1 on the A100s,
// 2-3 on the H100s, the first and last stage lightened for the embedding and the loss.
core::Plan uneven_mixed_plan() {
  core::Plan plan = make_plan(PlanShape{});  // 2 nodes: tp 2 × pp 4 × dp 2
  plan.cluster.groups = {{1, 8, "a100-80gb-dgx"}, {1, 8, "h100-80gb-dgx"}};
  plan.cluster.summarise_groups();
  plan.parallel.pipeline_layer_split = {8, 12, 12, 8};
  plan.validate();
  return plan;
}

void show_stages_and_wait(PlanDetailView& view, const core::Plan& plan) {
  QSignalSpy shown(&view, &PlanDetailView::planShown);
  // The profile given stands for one kind of device; a mixed plan's groups name their own.
  view.showPlan(plan, core::resolve_profile("a100-80gb-dgx"));
  ASSERT_TRUE(wait_until([&] { return !view.isSimulating(); }));
  ASSERT_EQ(shown.count(), 1) << view.summaryText().toStdString();
}

TEST(PipelineStageTableTest, AnUnevenMixedPlanShowsEachStagesRanksGroupAndLayers) {
  PlanDetailView view;
  show_stages_and_wait(view, uneven_mixed_plan());
  const PipelineStageTable& table = *view.stageTable();
  ASSERT_EQ(table.rowCount(), 4);
  const QString groups[] = {"0: a100-80gb-dgx", "0: a100-80gb-dgx", "1: h100-80gb-dgx", "1: h100-80gb-dgx"};
  const QString layers[] = {"8", "12", "12", "8"};
  const QString ranks[] = {"0–3", "4–7", "8–11", "12–15"};
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(table.cellText(r, PipelineStageTable::device_group), groups[r]);
    EXPECT_EQ(table.cellText(r, PipelineStageTable::layers), layers[r]);
    EXPECT_EQ(table.cellText(r, PipelineStageTable::ranks), ranks[r]);
    EXPECT_TRUE(table.cellText(r, PipelineStageTable::memory).endsWith("GiB"));
    EXPECT_EQ(table.cellText(r, PipelineStageTable::capacity), "80 GiB");
  }
  const sim::Prediction& prediction = *view.prediction();
  EXPECT_EQ(table.bottleneckRow(), prediction.bottleneck_pipeline_stage);
  EXPECT_TRUE(table.cellText(table.bottleneckRow(), PipelineStageTable::busy).contains("bottleneck"));
  EXPECT_EQ(view.memoryChart()->stageBarCount(), 4);
  save_screenshot(view, "plan_detail_uneven_mixed", QSize(1400, 900));
}

TEST(PipelineStageTableTest, InterleavedStagesListTheirChunks) {
  core::Plan plan = make_plan(PlanShape{});
  plan.parallel.schedule = core::Schedule::interleaved;
  plan.parallel.pipeline_layer_split = {4, 6, 6, 4, 4, 6, 6, 4};
  plan.validate();
  PlanDetailView view;
  show_stages_and_wait(view, plan);
  const PipelineStageTable& table = *view.stageTable();
  ASSERT_EQ(table.rowCount(), 4);
  EXPECT_EQ(table.cellText(0, PipelineStageTable::layers), "8 (4 + 4)");
  EXPECT_EQ(table.cellText(1, PipelineStageTable::layers), "12 (6 + 6)");
  EXPECT_EQ(table.cellText(0, PipelineStageTable::device_group), "a100-80gb-dgx");
}

TEST(PipelineStageTableTest, AFailedPlanClearsTheStages) {
  PlanDetailView view;
  show_stages_and_wait(view, uneven_mixed_plan());
  core::Plan broken = uneven_mixed_plan();
  broken.parallel.pipeline_layer_split = {8, 12, 12, 9};  // 41 layers
  QSignalSpy failed(&view, &PlanDetailView::simulationFailed);
  view.showPlan(broken, core::resolve_profile("a100-80gb-dgx"));
  ASSERT_TRUE(wait_until([&] { return !view.isSimulating(); }));
  ASSERT_EQ(failed.count(), 1);
  EXPECT_EQ(view.stageTable()->rowCount(), 0);
  EXPECT_EQ(view.stageTable()->bottleneckRow(), -1);
}

}  // namespace
}  // namespace loom::gui
