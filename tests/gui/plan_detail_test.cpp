// The Plan detail view: the step-time breakdown model, the memory chart against the device's
// capacity, the exports, the screenshots, and the background simulation that drops stale results.
// The timeline widget's own tests are in timeline_widget_test.cpp.

#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"
#include "gui/memory_chart.hpp"
#include "gui/models/breakdown_model.hpp"
#include "gui/plan_detail_view.hpp"
#include "gui/timeline_widget.hpp"
#include "detail_test_plans.hpp"
#include "gui_test_support.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>  // mkfifo

#include <QAbstractItemModelTester>
#include <QFile>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QSignalSpy>
#include <QTest>
#include <QWheelEvent>

#include <algorithm>
#include <optional>
#include <set>

namespace loom::gui {
namespace {

using test::save_screenshot;
using test::scratch_dir;
using test::wait_until;
using test::PlanShape;
using test::make_plan;
using test::interleaved_pp4_plan;
using test::a100;

// Shows `plan` and waits for its simulation to report.
void show_and_wait(PlanDetailView& view, const core::Plan& plan) {
  QSignalSpy shown(&view, &PlanDetailView::planShown);
  view.showPlan(plan, a100());
  ASSERT_TRUE(view.isSimulating());
  ASSERT_TRUE(wait_until([&] { return !view.isSimulating(); }));
  ASSERT_EQ(shown.count(), 1);
  ASSERT_TRUE(view.hasPlan());
}

QString read_text(const QString& path) {
  QFile file(path);
  EXPECT_TRUE(file.open(QIODevice::ReadOnly)) << path.toStdString();
  return QString::fromUtf8(file.readAll());
}

TEST(BreakdownModelTest, PassesTheModelTesterAndItsRowsSumToTheStepTime) {
  BreakdownModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  EXPECT_EQ(model.rowCount(), 0);

  const sim::Prediction prediction = sim::simulate(interleaved_pp4_plan(), a100());
  model.setBreakdown(prediction.breakdown, prediction.step_time_s);
  ASSERT_EQ(model.rowCount(), BreakdownModel::category_count);
  ASSERT_EQ(model.columnCount(), BreakdownModel::column_count);

  // The parts of the step sum to it; the hidden communication after them is no part of it.
  double seconds = 0, shares = 0;
  for (int row = 0; row < BreakdownModel::first_hidden; ++row) {
    seconds += model.index(row, BreakdownModel::time).data(BreakdownModel::SortRole).toDouble();
    shares += model.index(row, BreakdownModel::share).data(BreakdownModel::SortRole).toDouble();
  }
  EXPECT_NEAR(seconds, prediction.step_time_s, prediction.step_time_s * 1e-9);
  EXPECT_NEAR(shares, 1.0, 1e-9);

  // Display text carries units; the raw number is in SortRole.
  const QModelIndex forward_time = model.index(BreakdownModel::forward, BreakdownModel::time);
  EXPECT_TRUE(forward_time.data().toString().endsWith(" ms") ||
              forward_time.data().toString().endsWith(" s"))
      << forward_time.data().toString().toStdString();
  EXPECT_DOUBLE_EQ(forward_time.data(BreakdownModel::SortRole).toDouble(),
                   prediction.breakdown.forward_s);
  EXPECT_TRUE(model.index(BreakdownModel::pipeline_bubble, BreakdownModel::share)
                  .data()
                  .toString()
                  .endsWith(" %"));
  EXPECT_EQ(
      model.index(BreakdownModel::pipeline_bubble, BreakdownModel::category).data().toString(),
      QStringLiteral("pipeline bubble"));
  EXPECT_EQ(model.headerData(BreakdownModel::time, Qt::Horizontal).toString(),
            QStringLiteral("Time per step"));

  model.clear();
  EXPECT_EQ(model.rowCount(), 0);
}

TEST(BreakdownModelTest, HiddenCommunicationIsShownBesideTheStepNotInIt) {
  sim::Breakdown breakdown;
  breakdown.forward_s = 0.100;
  breakdown.backward_s = 0.200;
  breakdown.recompute_s = 0.050;
  breakdown.tp_comm_exposed_s = 0.012;
  breakdown.pp_comm_exposed_s = 0.003;
  breakdown.pp_bubble_s = 0.030;
  breakdown.dp_comm_exposed_s = 0.004;
  breakdown.optimizer_s = 0.001;
  breakdown.tp_comm_hidden_s = 0.0456;
  breakdown.dp_comm_hidden_s = 1.25;  // more than the whole step: it is not a share of it
  const double step_s = 0.400;
  BreakdownModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.setBreakdown(breakdown, step_s);
  ASSERT_EQ(model.rowCount(), BreakdownModel::category_count);

  auto text = [&](BreakdownModel::Category row, BreakdownModel::Column column) {
    return model.index(row, column).data().toString();
  };
  EXPECT_EQ(text(BreakdownModel::tp_comm_exposed, BreakdownModel::category), "TP comm exposed");
  EXPECT_EQ(text(BreakdownModel::tp_comm_exposed, BreakdownModel::time), "12.00 ms");
  EXPECT_EQ(text(BreakdownModel::tp_comm_exposed, BreakdownModel::share), "3.0 %");
  EXPECT_EQ(text(BreakdownModel::tp_comm_hidden, BreakdownModel::category), "TP comm hidden (beside GEMMs)");
  EXPECT_EQ(text(BreakdownModel::tp_comm_hidden, BreakdownModel::time), "45.60 ms");
  EXPECT_EQ(text(BreakdownModel::dp_comm_exposed, BreakdownModel::category), "DP comm exposed");
  EXPECT_EQ(text(BreakdownModel::dp_comm_exposed, BreakdownModel::time), "4.00 ms");
  EXPECT_EQ(text(BreakdownModel::dp_comm_hidden, BreakdownModel::category),
            "DP comm hidden (beside backward/forward)");
  EXPECT_EQ(text(BreakdownModel::dp_comm_hidden, BreakdownModel::time), "1.250 s");
  EXPECT_DOUBLE_EQ(model.seconds(BreakdownModel::dp_comm_hidden), 1.25);
  for (BreakdownModel::Category hidden : {BreakdownModel::tp_comm_hidden, BreakdownModel::dp_comm_hidden}) {
    EXPECT_FALSE(BreakdownModel::isPartOfStepTime(hidden));
    EXPECT_EQ(text(hidden, BreakdownModel::share), "not in step");
    EXPECT_EQ(model.index(hidden, BreakdownModel::share).data(BreakdownModel::SortRole).toDouble(), 0.0);
    EXPECT_TRUE(model.index(hidden, BreakdownModel::category).data(Qt::ToolTipRole).toString().contains("not part of it"));
  }
  // The parts of the step still sum to it, whatever was hidden beside them.
  double in_step = 0, shares = 0;
  for (int row = 0; row < model.rowCount(); ++row)
    if (BreakdownModel::isPartOfStepTime(BreakdownModel::Category(row))) {
      in_step += model.index(row, BreakdownModel::time).data(BreakdownModel::SortRole).toDouble();
      shares += model.index(row, BreakdownModel::share).data(BreakdownModel::SortRole).toDouble();
    }
  EXPECT_NEAR(in_step, step_s, 1e-12);
  EXPECT_NEAR(shares, 1.0, 1e-12);
}

TEST(BreakdownModelTest, DurationsCarryTheirUnits) {
  EXPECT_EQ(duration_text(1.5), QStringLiteral("1.500 s"));
  EXPECT_EQ(duration_text(0.01234), QStringLiteral("12.34 ms"));
  EXPECT_EQ(duration_text(25e-6), QStringLiteral("25.0 µs"));
  EXPECT_EQ(duration_text(0), QStringLiteral("0.00 ms"));
}

TEST(PlanDetailViewTest, AnInterleavedPp4PlanShowsFourPipelineRowsAndFourStageBars) {
  PlanDetailView view;
  EXPECT_FALSE(view.hasPlan());
  const core::Plan plan = interleaved_pp4_plan();
  show_and_wait(view, plan);

  EXPECT_EQ(view.timeline()->pipelineRowCount(), 4);
  EXPECT_EQ(view.memoryChart()->stageBarCount(), 4);
  // Each rank has a compute row plus pp, dp and tp lanes (tp = 2, dp = 2, pp = 4 all communicate).
  EXPECT_EQ(view.timeline()->rowCount(), 4 * 4);
  EXPECT_EQ(view.breakdownModel()->rowCount(), BreakdownModel::category_count);
  EXPECT_DOUBLE_EQ(view.breakdownModel()->stepTimeSeconds(), view.prediction()->step_time_s);
  ASSERT_NE(view.plan(), nullptr);
  EXPECT_EQ(view.plan()->parallel, plan.parallel);
  // The bars are the simulator's memory per stage.
  const sim::Prediction& prediction = *view.prediction();
  for (int stage = 0; stage < 4; ++stage)
    EXPECT_NEAR(view.memoryChart()->stageTotalGiB(stage),
                double(prediction.memory[size_t(stage)].total_bytes()) / double(int64_t(1) << 30),
                1e-6);

  const QString summary = view.summaryText();
  EXPECT_TRUE(summary.contains("gpt3-13b")) << summary.toStdString();
  EXPECT_TRUE(summary.contains("tp 2, pp 4, dp 2, vpp 2")) << summary.toStdString();
  EXPECT_TRUE(summary.contains("schedule interleaved")) << summary.toStdString();
  EXPECT_TRUE(summary.contains("tokens/s")) << summary.toStdString();
  EXPECT_TRUE(summary.contains("MFU")) << summary.toStdString();
  EXPECT_TRUE(summary.contains("GiB")) << summary.toStdString();
  EXPECT_TRUE(summary.contains(prediction.fits ? ": fits" : "does not fit"))
      << summary.toStdString();
}

TEST(PlanDetailViewTest, ExportsAPlanMegatronArgumentsAndATrace) {
  PlanDetailView view;
  const core::Plan plan = interleaved_pp4_plan();
  show_and_wait(view, plan);
  const QString directory = scratch_dir();

  const QString plan_path = directory + "/exported-plan.json";
  view.exportPlanJson(plan_path);
  const core::Plan read_back = core::read_plan_file(plan_path.toStdString());
  EXPECT_EQ(read_back.parallel, plan.parallel);
  EXPECT_EQ(read_back, plan);

  const QString megatron_path = directory + "/exported-megatron.sh";
  view.exportMegatronArguments(megatron_path);
  const QString arguments = read_text(megatron_path);
  EXPECT_TRUE(arguments.contains("--tensor-model-parallel-size")) << arguments.toStdString();
  EXPECT_TRUE(arguments.contains("--pipeline-model-parallel-size")) << arguments.toStdString();
  EXPECT_TRUE(arguments.contains("--num-layers-per-virtual-pipeline-stage"))
      << arguments.toStdString();

  const QString trace_path = directory + "/exported-trace.json";
  view.exportTrace(trace_path);
  QJsonParseError error;
  const QJsonDocument trace = QJsonDocument::fromJson(read_text(trace_path).toUtf8(), &error);
  ASSERT_EQ(error.error, QJsonParseError::NoError) << error.errorString().toStdString();
  ASSERT_TRUE(trace.isObject());
  EXPECT_TRUE(trace.object().value("traceEvents").isArray());
  EXPECT_GT(trace.object().value("traceEvents").toArray().size(), 100);

  // A file that cannot be written is refused naming the path and why; a FIFO (or any file that
  // is not a regular one) is never written to.
  const QString unwritable = directory + "/no-such-directory/plan.json";
  try {
    view.exportPlanJson(unwritable);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-directory' does not exist"), std::string::npos) << e.what();
  }
  const QString fifo = directory + "/fifo";
  ASSERT_EQ(mkfifo(QFile::encodeName(fifo).constData(), 0644), 0);
  try {
    view.exportTrace(fifo);
    FAIL() << "expected an error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("is a FIFO (named pipe), not a regular file"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(QFileInfo(fifo).isFile() == false && QFileInfo::exists(fifo));
}

TEST(PlanDetailViewTest, ExportingWithoutAPlanIsAnError) {
  PlanDetailView view;
  EXPECT_THROW(view.exportPlanJson(scratch_dir() + "/nothing.json"), Error);
  EXPECT_THROW(view.exportMegatronArguments(scratch_dir() + "/nothing.sh"), Error);
  EXPECT_THROW(view.exportTrace(scratch_dir() + "/nothing-trace.json"), Error);
}

TEST(PlanDetailViewTest, APlanThatDoesNotFitHasABarAboveTheCapacityLine) {
  // GPT-3 175B with tp 8, pp 4 on 32 A100s: 175e9 parameters · 18 B / 32 devices is ~92 GiB of
  // weights and training state alone, more than the 80 GiB each device has.
  PlanShape shape;
  shape.model = "gpt3-175b";
  shape.nodes = 4;
  shape.tp = 8;
  shape.pp = 4;
  shape.microbatches = 4;
  shape.recompute = core::Recompute::full;
  core::Plan plan = make_plan(shape);
  plan.parallel.distributed_optimizer = false;  // dp = 1: ZeRO-1 would shard nothing anyway
  PlanDetailView view;
  show_and_wait(view, plan);
  ASSERT_FALSE(view.prediction()->fits);

  const MemoryChart& chart = *view.memoryChart();
  EXPECT_EQ(chart.stageBarCount(), 4);
  const double capacity = chart.capacityLineGiB();
  EXPECT_NEAR(capacity, double(view.prediction()->device_memory_bytes) / double(int64_t(1) << 30),
              1e-9);
  double tallest = 0;
  for (int stage = 0; stage < chart.stageBarCount(); ++stage)
    tallest = std::max(tallest, chart.stageTotalGiB(stage));
  EXPECT_GT(tallest, capacity);
  // The axis shows the whole bar, so the line is visibly below its top.
  EXPECT_GE(chart.axisMaximumGiB(), tallest);
  EXPECT_TRUE(view.summaryText().contains("does not fit"));
  // Hovering a bar names each part of it.
  const QString tip = chart.stageToolTip(0);
  EXPECT_TRUE(tip.contains("Pipeline stage 0")) << tip.toStdString();
  EXPECT_TRUE(tip.contains("optimizer state")) << tip.toStdString();
  EXPECT_TRUE(tip.contains("GiB")) << tip.toStdString();
  EXPECT_TRUE(chart.stageToolTip(4).isEmpty());
  save_screenshot(view, "plan_detail_does_not_fit", QSize(1400, 900));
}

TEST(PlanDetailViewTest, APlanThatFitsHasItsBarsUnderTheCapacityLine) {
  PlanDetailView view;
  show_and_wait(view, interleaved_pp4_plan());
  ASSERT_TRUE(view.prediction()->fits);
  const MemoryChart& chart = *view.memoryChart();
  for (int stage = 0; stage < chart.stageBarCount(); ++stage)
    EXPECT_LE(chart.stageTotalGiB(stage), chart.capacityLineGiB());
  EXPECT_GE(chart.axisMaximumGiB(), chart.capacityLineGiB());
}

TEST(PlanDetailViewTest, ANewerPlanWinsOverAStaleSimulation) {
  PlanDetailView view;
  PlanShape second_shape;
  second_shape.pp = 2;
  second_shape.nodes = 1;
  second_shape.model = "gpt3-1.3b";
  const core::Plan first = interleaved_pp4_plan();
  const core::Plan second = make_plan(second_shape);
  QSignalSpy shown(&view, &PlanDetailView::planShown);
  view.showPlan(first, a100());
  view.showPlan(second, a100());
  ASSERT_TRUE(wait_until([&] { return !view.isSimulating(); }));
  // Whichever job finished first, only the latest plan's result reached the screen.
  EXPECT_EQ(shown.count(), 1);
  ASSERT_NE(view.plan(), nullptr);
  EXPECT_EQ(*view.plan(), second);
  EXPECT_EQ(view.timeline()->pipelineRowCount(), 2);
  EXPECT_EQ(view.memoryChart()->stageBarCount(), 2);
  // The first job may still be running; it must not report later either.
  QTest::qWait(200);
  EXPECT_EQ(shown.count(), 1);
}

TEST(PlanDetailViewTest, APlanThatCannotBeSimulatedSaysWhy) {
  PlanDetailView view;
  show_and_wait(view, interleaved_pp4_plan());
  core::Plan broken = interleaved_pp4_plan();
  broken.parallel.tensor_parallel = 3;  // 40 heads do not split over 3 ranks
  QSignalSpy failed(&view, &PlanDetailView::simulationFailed);
  view.showPlan(broken, a100());
  ASSERT_TRUE(wait_until([&] { return !view.isSimulating(); }));
  ASSERT_EQ(failed.count(), 1);
  EXPECT_FALSE(failed.at(0).at(0).toString().isEmpty());
  EXPECT_FALSE(view.hasPlan());
  EXPECT_EQ(view.timeline()->pipelineRowCount(), 0);
  EXPECT_EQ(view.memoryChart()->stageBarCount(), 0);
  EXPECT_EQ(view.breakdownModel()->rowCount(), 0);
  EXPECT_THROW(view.exportPlanJson(scratch_dir() + "/broken.json"), Error);
}

// How many pixels of `area` have exactly `colour` (screenshots are PNG: lossless).
int pixels_of(const QImage& image, const QRect& area, const QColor& colour) {
  int count = 0;
  const QRect inside = area.intersected(image.rect());
  for (int y = inside.top(); y <= inside.bottom(); ++y)
    for (int x = inside.left(); x <= inside.right(); ++x)
      count += QColor(image.pixel(x, y)).rgb() == colour.rgb();
  return count;
}

int distinct_colours(const QImage& image, const QRect& area) {
  std::set<QRgb> colours;
  const QRect inside = area.intersected(image.rect());
  for (int y = inside.top(); y <= inside.bottom(); ++y)
    for (int x = inside.left(); x <= inside.right(); ++x)
      colours.insert(image.pixel(x, y) | 0xff000000u);
  return int(colours.size());
}

// Reads back a screenshot, which must have the widget's size in pixels.
QImage read_screenshot(const QString& path, const QWidget& widget) {
  const QImage image(path);
  EXPECT_FALSE(image.isNull()) << path.toStdString();
  EXPECT_EQ(image.size(), widget.size() * widget.devicePixelRatio()) << path.toStdString();
  return image;
}

TEST(PlanDetailViewTest, Screenshots) {
  PlanDetailView view;
  const core::Plan plan = interleaved_pp4_plan();
  show_and_wait(view, plan);
  const QString whole = save_screenshot(view, "plan_detail", QSize(1400, 900));
  ASSERT_EQ(view.devicePixelRatio(), 1.0) << "the pixel checks below read widget coordinates";
  const QImage shot = read_screenshot(whole, view);
  ASSERT_EQ(shot.size(), QSize(1400, 900));
  // A page of text, bars, a table and boxes: far from one flat colour.
  EXPECT_GT(distinct_colours(shot, shot.rect()), 50);

  // The header shows the plan and its predicted step time, inside the picture.
  const QString step_time = duration_text(view.prediction()->step_time_s);
  const QLabel* header = nullptr;
  for (const QLabel* label : view.findChildren<QLabel*>())
    if (label->text().contains("gpt3-13b") && label->text().contains(step_time)) header = label;
  ASSERT_NE(header, nullptr) << "no label names the plan and its step time "
                             << step_time.toStdString();
  EXPECT_TRUE(header->isVisible());
  const QRect header_area(header->mapTo(&view, QPoint(0, 0)), header->size());
  EXPECT_TRUE(shot.rect().contains(header_area));
  EXPECT_GT(distinct_colours(shot, header_area), 2) << "the header's text was not drawn";

  // The timeline's first compute row, where it shows in the picture, has forward boxes.
  const TimelineWidget& timeline = *view.timeline();
  ASSERT_TRUE(timeline.isVisible());
  const QRect first_row = timeline.rowRect(0, sim::Stream::compute)
                              .intersected(timeline.visibleRegion().boundingRect())
                              .translated(timeline.mapTo(&view, QPoint(0, 0)));
  ASSERT_FALSE(first_row.isEmpty());
  EXPECT_GT(pixels_of(shot, first_row, TimelineWidget::colourOf(TimelineEventKind::forward)), 100);
  EXPECT_GT(pixels_of(shot, first_row, TimelineWidget::colourOf(TimelineEventKind::backward)), 100);

  // The warm-up of the interleaved schedule, zoomed in far enough to read every box.
  TimelineWidget zoomed;
  zoomed.setTimeline(view.prediction()->timeline, 4);
  const double step = view.prediction()->step_time_s;
  zoomed.zoomTo(0, step * 0.3);
  const QString zoomed_path =
      save_screenshot(zoomed, "timeline_zoomed", QSize(1400, zoomed.sizeHint().height()));
  const QImage zoomed_shot = read_screenshot(zoomed_path, zoomed);

  // Every compute box shown whole and wider than a label's margins is painted where the layout
  // puts it, in its kind's colour: forward across, backward at its end (recompute leads it).
  int boxes_checked = 0;
  for (const sim::TimelineEvent& e : view.prediction()->timeline.events) {
    const TimelineEventKind kind = timeline_event_kind(e);
    if (e.stream != sim::Stream::compute || e.start_s + e.duration_s > step * 0.3) continue;
    if (kind != TimelineEventKind::forward && kind != TimelineEventKind::backward) continue;
    const double x0 = zoomed.xOfTime(e.start_s), x1 = zoomed.xOfTime(e.start_s + e.duration_s);
    if (x1 - x0 < 10) continue;
    const QRect row = zoomed.rowRect(e.pipeline_rank, sim::Stream::compute);
    const QPoint inside(kind == TimelineEventKind::forward ? int(x0) + 3 : int(x1) - 3,
                        row.top() + 4);
    EXPECT_EQ(QColor(zoomed_shot.pixel(inside)).name().toStdString(),
              TimelineWidget::colourOf(kind).name().toStdString())
        << e.name << " of rank " << e.pipeline_rank << " at " << inside.x() << ", " << inside.y();
    ++boxes_checked;
  }
  EXPECT_GE(boxes_checked, 8);

  // Before rank 3's first forward its row shows the hatched bubble, nothing else.
  const QRect last_row = zoomed.rowRect(3, sim::Stream::compute);
  double first_start = step;
  for (const sim::TimelineEvent& e : view.prediction()->timeline.events)
    if (e.pipeline_rank == 3 && e.stream == sim::Stream::compute)
      first_start = std::min(first_start, e.start_s);
  const QRect bubble(QPoint(int(zoomed.xOfTime(0)) + 1, last_row.top() + 1),
                     QPoint(int(zoomed.xOfTime(first_start)) - 2, last_row.bottom() - 1));
  ASSERT_GT(bubble.width(), 20);
  EXPECT_EQ(pixels_of(zoomed_shot, bubble, TimelineWidget::bubbleColour()) +
                pixels_of(zoomed_shot, bubble, TimelineWidget::bubbleHatchColour()),
            bubble.width() * bubble.height());
  EXPECT_GT(pixels_of(zoomed_shot, bubble, TimelineWidget::bubbleHatchColour()), 0);

  // The row labels in the gutter and the axis labels above the plot were drawn.
  EXPECT_GT(distinct_colours(zoomed_shot, QRect(0, last_row.top(), TimelineLayout::kGutterWidth,
                                                last_row.height())),
            2);
  EXPECT_GT(distinct_colours(zoomed_shot, QRect(TimelineLayout::kGutterWidth, 0, 1400,
                                                TimelineLayout::kAxisHeight - 2)),
            2);
}

}  // namespace
}  // namespace loom::gui
