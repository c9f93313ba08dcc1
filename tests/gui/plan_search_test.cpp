// The desktop app end to end, as a user drives it: fill the form from a preset, search, find
// rows in the results, select the best plan, see its timeline and memory per pipeline stage,
// export it and have `loom show` accept the file. Every view is grabbed to build/screenshots/.

#include "gui_test_support.hpp"

#include "core/error.hpp"
#include "core/plan_json.hpp"
#include "gui/execute_view.hpp"
#include "gui/main_window.hpp"
#include "gui/memory_chart.hpp"
#include "gui/models/plan_filter_model.hpp"
#include "gui/models/plan_table_model.hpp"
#include "gui/models/reject_reasons_model.hpp"
#include "gui/pareto_chart.hpp"
#include "gui/plan_detail_view.hpp"
#include "gui/plan_view.hpp"
#include "gui/results_view.hpp"
#include "gui/timeline_widget.hpp"

#include <gtest/gtest.h>

#include <QComboBox>
#include <QFile>
#include <QProcess>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTableView>

namespace loom::gui {
namespace {

using test::save_screenshot;
using test::scratch_dir;
using test::wait_until;

// GPT-3 13B on 8 DGX A100 nodes: a space where the best plans split the model over a pipeline.
void fill_form(PlanView& view) {
  PlanInputs in = view.inputs();
  view.selectPreset("gpt3-13b");
  in = view.inputs();
  in.nodes = 8;
  in.devices_per_node = 8;
  in.profile = "a100-80gb-dgx";
  in.global_batch_size = 512;
  view.setInputs(in);
}

TEST(PlanForm, ShowsTheCoresMessageNextToTheFieldAsItIsTyped) {
  PlanView view;
  view.selectPreset("gpt3-1.3b");
  EXPECT_TRUE(view.canSearch());
  PlanInputs in = view.inputs();
  EXPECT_EQ(in.model.name, "gpt3-1.3b");
  in.model.num_attention_heads = 7;
  view.setInputs(in);
  EXPECT_FALSE(view.canSearch());
  EXPECT_TRUE(view.problemShownFor("num-attention-heads").contains("does not divide hidden-size=2048"))
      << view.problemShownFor("num-attention-heads").toStdString();
  EXPECT_TRUE(view.problemShownFor("hidden-size").isEmpty());
  save_screenshot(view, "plan_form_error", QSize(1100, 700));
  in.model.num_attention_heads = 16;
  view.setInputs(in);
  EXPECT_TRUE(view.canSearch());
  EXPECT_TRUE(view.problemShownFor("num-attention-heads").isEmpty());
}

TEST(PlanForm, TheAttentionBackendChosenIsKeptInEverySearchedPlan) {
  PlanView view;
  view.selectPreset("gpt3-1.3b");
  PlanInputs in = view.inputs();
  in.nodes = 1;
  in.global_batch_size = 64;
  view.setInputs(in);
  auto* attention = view.findChild<QComboBox*>(QStringLiteral("attention-backend"));
  ASSERT_NE(attention, nullptr);
  EXPECT_EQ(attention->currentText(), "flash") << "as `loom plan` assumes";
  EXPECT_EQ(view.inputs().attention_backend, core::AttentionBackend::flash);
  attention->setCurrentText("unfused");
  EXPECT_EQ(view.inputs().attention_backend, core::AttentionBackend::unfused);
  EXPECT_EQ(to_search_request(view.inputs()).attention_backend, core::AttentionBackend::unfused);

  QSignalSpy finished(&view, &PlanView::searchFinished);
  view.search();
  ASSERT_TRUE(wait_until([&] { return finished.count() == 1; }, std::chrono::minutes(2)));
  const auto result = finished.at(0).at(0).value<std::shared_ptr<const plan::SearchResult>>();
  ASSERT_FALSE(result->top.empty());
  for (const plan::RankedPlan& ranked : result->top)
    EXPECT_EQ(ranked.plan.parallel.attention_backend, core::AttentionBackend::unfused);
  // setInputs() shows the choice back.
  in.attention_backend = core::AttentionBackend::flash;
  view.setInputs(in);
  EXPECT_EQ(attention->currentText(), "flash");
}

TEST(DesktopApp, SearchSelectInspectAndExport) {
  MainWindow window(scratch_dir() + "/plan_search.db");
  window.resize(1400, 900);
  window.show();
  fill_form(*window.planView());
  save_screenshot(window, "plan");
  ASSERT_TRUE(window.planView()->canSearch());

  QSignalSpy finished(window.planView(), &PlanView::searchFinished);
  window.planView()->search();
  ASSERT_TRUE(wait_until([&] { return finished.count() == 1; }, std::chrono::minutes(2)));
  ResultsView& results = *window.resultsView();
  EXPECT_EQ(window.tabs()->currentWidget(), &results) << "a finished search shows its results";
  ASSERT_GT(results.planModel()->rowCount(), 10);
  EXPECT_GT(results.rejectModel()->rowCount(), 0);
  EXPECT_EQ(results.paretoChart()->pointCount(), results.planModel()->rowCount());
  save_screenshot(window, "results");

  // The best plan is selected; its detail shows one timeline row and one memory bar per stage.
  const int best = results.planModel()->bestRow();
  ASSERT_GE(best, 0);
  const core::Plan best_plan = results.planModel()->row(best).plan;
  const int pp = int(best_plan.parallel.pipeline_parallel);
  PlanDetailView& detail = *window.detailView();
  ASSERT_TRUE(wait_until([&] { return detail.hasPlan() && detail.timeline()->pipelineRowCount() == pp; }))
      << "timeline rows " << detail.timeline()->pipelineRowCount() << ", pp " << pp;
  EXPECT_EQ(detail.memoryChart()->stageBarCount(), pp);
  EXPECT_TRUE(window.executeView()->commandLine().contains("loom run")) << window.executeView()->commandLine().toStdString();

  // A plan with a deeper pipeline, chosen by clicking its point in the Pareto chart.
  int deep = -1;
  for (int row = 0; row < results.planModel()->rowCount(); ++row) {
    const PlanTableModel::Row& r = results.planModel()->row(row);
    if (r.prediction && r.plan.parallel.pipeline_parallel >= 4 && (deep < 0 || r.on_pareto_front)) deep = row;
  }
  ASSERT_GE(deep, 0) << "no plan with pp >= 4 among the results";
  emit results.paretoChart()->rowClicked(deep);
  const core::Plan deep_plan = results.planModel()->row(deep).plan;
  const int deep_pp = int(deep_plan.parallel.pipeline_parallel);
  ASSERT_TRUE(wait_until([&] { return detail.timeline()->pipelineRowCount() == deep_pp; }));
  EXPECT_EQ(detail.memoryChart()->stageBarCount(), deep_pp);
  window.showTab(MainWindow::Tab::detail);
  save_screenshot(window, "plan_detail_window");

  // The filter narrows the table; the chart's selection follows the table's.
  results.setFilterExpression(QString("pp=%1").arg(deep_pp));
  for (int row = 0; row < results.filterModel()->rowCount(); ++row)
    EXPECT_EQ(results.filterModel()->data(results.filterModel()->index(row, PlanTableModel::pipeline_parallel)).toInt(), deep_pp);
  results.setFilterExpression("");

  // Export: `loom show` accepts what the app wrote, and it is the plan shown.
  const QString exported = scratch_dir() + "/exported_plan.json";
  detail.exportPlanJson(exported);
  EXPECT_EQ(core::to_json(core::read_plan_file(exported.toStdString()).parallel).dump(),
            core::to_json(deep_plan.parallel).dump());
  QProcess show;
  show.start(test::binary_dir() + "/loom", {"show", exported});
  ASSERT_TRUE(show.waitForFinished(60000));
  EXPECT_EQ(show.exitCode(), 0) << show.readAllStandardError().toStdString();
  EXPECT_TRUE(show.readAllStandardOutput().contains("gpt3-13b"));

  // Opening the exported file shows the same plan.
  window.openPlanFile(exported);
  ASSERT_TRUE(wait_until([&] { return detail.timeline()->pipelineRowCount() == deep_pp; }));
  EXPECT_THROW(window.openPlanFile(scratch_dir() + "/missing.json"), Error);
}

TEST(ExecuteForm, AMeasuredCpuProfileSetsTheThreadsTheRunIsComparedWith) {
  ExecuteView execute;
  core::Plan plan = test::loom_tiny_two_stage_plan();  // on the measured 2-core profile
  execute.setPlan(plan);
  EXPECT_EQ(execute.profile(), "cpu-epyc-2core-vm");
  EXPECT_EQ(execute.threads(), 1);  // as the profile was measured
  EXPECT_TRUE(execute.commandLine().endsWith("--profile cpu-epyc-2core-vm --threads 1"))
      << execute.commandLine().toStdString();
  // A datasheet profile leaves the threads to loom run's launch rule.
  plan.cluster.profile = "a100-80gb-dgx";
  execute.setPlan(plan);
  EXPECT_EQ(execute.threads(), 0);
  EXPECT_TRUE(execute.commandLine().endsWith("--profile a100-80gb-dgx")) << execute.commandLine().toStdString();
  execute.setThreads(2);
  EXPECT_TRUE(execute.commandLine().endsWith("--profile a100-80gb-dgx --threads 2"));
  execute.setProfile("cpu-epyc-2core-vm");
  EXPECT_TRUE(execute.commandLine().endsWith("--profile cpu-epyc-2core-vm --threads 1"));
}

TEST(ExecuteForm, OffersOnlyTheBackendsLoomRunAccepts) {
  // `loom run --backend cuda` is refused until the executor has a CUDA backend.
  ExecuteView execute;
  execute.setPlan(test::loom_tiny_two_stage_plan());
  const auto* backend = execute.findChild<QComboBox*>(QStringLiteral("backend"));
  ASSERT_NE(backend, nullptr);
  QStringList offered;
  for (int i = 0; i < backend->count(); ++i) offered << backend->itemData(i).toString();
  EXPECT_EQ(offered, QStringList{"cpu"});
  EXPECT_TRUE(execute.commandLine().contains(" --backend cpu "))
      << execute.commandLine().toStdString();
}

TEST(DesktopApp, APlanFileRunsAgainstTheMeasuredProfileChosenInThePlanView) {
  MainWindow window(scratch_dir() + "/execute_profile.db");
  PlanInputs in = window.planView()->inputs();
  in.profile = "cpu-epyc-2core-vm";
  window.planView()->setInputs(in);
  core::Plan plan = test::loom_tiny_two_stage_plan();
  plan.cluster.profile = "a100-80gb-dgx";  // as `loom init` writes it without --profile
  const QString path = scratch_dir() + "/datasheet_plan.json";
  {
    QFile file(path);
    ASSERT_TRUE(file.open(QIODevice::WriteOnly));
    file.write(QByteArray::fromStdString(core::to_json(plan).dump(2)));
  }
  window.openPlanFile(path);
  EXPECT_EQ(window.executeView()->profile(), "cpu-epyc-2core-vm");
  EXPECT_TRUE(window.executeView()->commandLine().endsWith("--profile cpu-epyc-2core-vm --threads 1"))
      << window.executeView()->commandLine().toStdString();
  // A datasheet profile in the Plan view does not displace the plan's own.
  in.profile = "h100-80gb-dgx";
  window.planView()->setInputs(in);
  window.openPlanFile(path);
  EXPECT_EQ(window.executeView()->profile(), "a100-80gb-dgx");
}

TEST(DesktopApp, CancelStopsALongSearch) {
  MainWindow window(scratch_dir() + "/cancel.db");
  PlanView& view = *window.planView();
  view.selectPreset("gpt3-175b");
  PlanInputs in = view.inputs();
  in.nodes = 512;
  in.global_batch_size = 1536;
  view.setInputs(in);
  QSignalSpy finished(&view, &PlanView::searchFinished);
  view.search();
  EXPECT_TRUE(view.isSearching());
  view.cancelSearch();
  ASSERT_TRUE(wait_until([&] { return !view.isSearching(); }));
  EXPECT_EQ(finished.count(), 0);
  EXPECT_TRUE(view.canSearch()) << "a new search can start";
}

}  // namespace
}  // namespace loom::gui
