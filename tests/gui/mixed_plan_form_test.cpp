// The plan form's mixed cluster (issue 23): device groups typed in pipeline order, which ranks sit
// on which group shown under them, problems shown next to the field, and a search over them that
// places each plan's stages on the groups (its best plan shown stage by stage in the detail view).

#include "gui_test_support.hpp"

#include "core/error.hpp"
#include "gui/cluster_groups_field.hpp"
#include "gui/models/plan_inputs.hpp"
#include "gui/pipeline_stage_table.hpp"
#include "gui/plan_detail_view.hpp"
#include "gui/models/plan_table_model.hpp"
#include "gui/plan_view.hpp"

#include <gtest/gtest.h>

#include <QLabel>
#include <QLineEdit>
#include <QSignalSpy>

namespace loom::gui {
namespace {

using test::save_screenshot;
using test::wait_until;

TEST(MixedClusterInputs, GroupsAreReadAndWrittenInTheFormsSyntax) {
  const std::vector<core::DeviceGroup> groups = parse_device_groups(" 1x8:a100-80gb-dgx , 2x8:h100-80gb-dgx");
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0], (core::DeviceGroup{1, 8, "a100-80gb-dgx"}));
  EXPECT_EQ(groups[1], (core::DeviceGroup{2, 8, "h100-80gb-dgx"}));
  EXPECT_EQ(device_groups_text(groups), "1x8:a100-80gb-dgx, 2x8:h100-80gb-dgx");
  EXPECT_TRUE(parse_device_groups("  ").empty());
  try {
    parse_device_groups("1x8:a100-80gb-dgx, 8:h100-80gb-dgx");
    ADD_FAILURE() << "a malformed entry was read";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("cluster-groups entry 2 \"8:h100-80gb-dgx\""), std::string::npos) << e.what();
  }
}

TEST(MixedClusterInputs, TheSearchRequestHasEachGroupAndItsProfile) {
  PlanInputs in = default_plan_inputs();
  in.groups = {{1, 8, "a100-80gb-dgx"}, {1, 8, "h100-80gb-dgx"}};
  EXPECT_EQ(in.devices(), 16);
  const plan::SearchRequest request = to_search_request(in);
  EXPECT_EQ(request.devices, 16);
  EXPECT_EQ(request.devices_per_node, 8);
  ASSERT_EQ(request.group_profiles.size(), 2u);
  EXPECT_EQ(request.groups, in.groups);
  EXPECT_TRUE(request.search_layer_splits);  // as `loom plan` by default
  in.uneven_layer_splits = false;
  EXPECT_FALSE(to_search_request(in).search_layer_splits);
  in.uneven_layer_splits = true;
  // Refusals land next to the mixed-cluster field.
  in.groups = {{1, 8, "a100-80gb-dgx"}};
  ASSERT_TRUE(find_input_problem(in).has_value());
  EXPECT_EQ(find_input_problem(in)->field, "cluster-groups") << find_input_problem(in)->message;
  in.groups = {{1, 8, "a100-80gb-dgx"}, {1, 8, "no-such-gpu"}};
  ASSERT_TRUE(find_input_problem(in).has_value());
  EXPECT_EQ(find_input_problem(in)->field, "cluster-groups") << find_input_problem(in)->message;
}

TEST(MixedClusterForm, ShowsWhichRanksSitOnWhichGroupAndSearchesThem) {
  PlanView view;
  view.selectPreset("gpt3-1.3b");
  PlanInputs in = view.inputs();
  in.global_batch_size = 64;
  in.groups = {{1, 8, "a100-80gb-dgx"}, {1, 8, "h100-80gb-dgx"}};
  view.setInputs(in);
  ASSERT_TRUE(view.canSearch()) << view.problemShownFor("cluster-groups").toStdString();
  auto* placement = view.findChild<QLabel*>(QStringLiteral("cluster-placement"));
  ASSERT_NE(placement, nullptr);
  EXPECT_TRUE(placement->text().contains("ranks 0–7 on a100-80gb-dgx, then ranks 8–15 on h100-80gb-dgx"))
      << placement->text().toStdString();
  save_screenshot(view, "plan_form_mixed_cluster", QSize(1100, 760));

  QSignalSpy finished(&view, &PlanView::searchFinished);
  view.search();
  ASSERT_TRUE(wait_until([&] { return finished.count() == 1; }, std::chrono::minutes(2)));
  const auto result = finished.at(0).at(0).value<std::shared_ptr<const plan::SearchResult>>();
  ASSERT_FALSE(result->top.empty());
  const core::Plan& best = result->top.front().plan;
  EXPECT_TRUE(best.cluster.mixed());
  // The results table says each plan's split: even, or the layers of every virtual stage.
  PlanTableModel table;
  table.setResult(*result);
  bool uneven_shown = false;
  for (int row = 0; row < table.rowCount(); ++row) {
    const QString layers = table.index(row, PlanTableModel::layers).data().toString();
    EXPECT_TRUE(layers == "even" || layers.contains(',')) << layers.toStdString();
    uneven_shown = uneven_shown || layers != "even";
  }
  EXPECT_TRUE(uneven_shown) << "the faster group should take more layers in some of the best plans";
  PlanDetailView detail;
  QSignalSpy shown(&detail, &PlanDetailView::planShown);
  detail.showPlan(best, core::resolve_profile("a100-80gb-dgx"));
  ASSERT_TRUE(wait_until([&] { return !detail.isSimulating(); }));
  ASSERT_EQ(shown.count(), 1) << detail.summaryText().toStdString();
  EXPECT_EQ(detail.stageTable()->rowCount(), int(best.parallel.pipeline_parallel));

  // A malformed entry is shown next to the field and stops the search.
  view.findChild<QLineEdit*>(QStringLiteral("cluster-groups"))->setText("1x8:a100-80gb-dgx, 1y8");
  EXPECT_FALSE(view.canSearch());
  EXPECT_TRUE(view.problemShownFor("cluster-groups").contains("cluster-groups entry 2"))
      << view.problemShownFor("cluster-groups").toStdString();
}

}  // namespace
}  // namespace loom::gui
