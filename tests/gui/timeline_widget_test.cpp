// The pipeline timeline widget: its zoom stack and the tooltips that name each event.

#include "detail_test_plans.hpp"
#include "gui/timeline_widget.hpp"
#include "gui_test_support.hpp"
#include "simulator/prediction.hpp"

#include <gtest/gtest.h>

#include <QTest>
#include <QWheelEvent>

namespace loom::gui {
namespace {

using test::a100;
using test::interleaved_pp4_plan;

TEST(TimelineWidgetTest, ZoomingPushesRangesAndZoomingOutRestoresThem) {
  const sim::Prediction prediction = sim::simulate(interleaved_pp4_plan(), a100());
  TimelineWidget timeline;
  timeline.setTimeline(prediction.timeline, 4);
  timeline.resize(1200, timeline.sizeHint().height());
  const double full_start = timeline.visibleStartSeconds(), full_end = timeline.visibleEndSeconds();
  const double step = prediction.step_time_s;
  EXPECT_DOUBLE_EQ(full_start, 0.0);
  EXPECT_GE(full_end, step);
  EXPECT_EQ(timeline.zoomDepth(), 0);
  EXPECT_FALSE(timeline.zoomOut());

  timeline.zoomTo(step * 0.25, step * 0.5);
  EXPECT_DOUBLE_EQ(timeline.visibleStartSeconds(), step * 0.25);
  EXPECT_DOUBLE_EQ(timeline.visibleEndSeconds(), step * 0.5);
  EXPECT_EQ(timeline.zoomDepth(), 1);

  // A rubber band from x = 300 to x = 600 pushes the range under it.
  const QRect compute_row = timeline.rowRect(0, sim::Stream::compute);
  ASSERT_FALSE(compute_row.isEmpty());
  const double band_start = timeline.timeAtX(300), band_end = timeline.timeAtX(600);
  QTest::mousePress(&timeline, Qt::LeftButton, {}, QPoint(300, compute_row.center().y()));
  QTest::mouseMove(&timeline, QPoint(450, compute_row.center().y()));
  QTest::mouseMove(&timeline, QPoint(600, compute_row.center().y()));
  QTest::mouseRelease(&timeline, Qt::LeftButton, {}, QPoint(600, compute_row.center().y()));
  EXPECT_NEAR(timeline.visibleStartSeconds(), band_start, step * 1e-9);
  EXPECT_NEAR(timeline.visibleEndSeconds(), band_end, step * 1e-9);
  EXPECT_EQ(timeline.zoomDepth(), 2);

  // The wheel zooms in around the cursor: the time under it stays put.
  const QPointF cursor(500, compute_row.center().y());
  const double anchor = timeline.timeAtX(cursor.x());
  const double span_before = timeline.visibleEndSeconds() - timeline.visibleStartSeconds();
  QWheelEvent wheel_in(cursor, timeline.mapToGlobal(cursor), QPoint(), QPoint(0, 120), Qt::NoButton,
                       Qt::NoModifier, Qt::NoScrollPhase, false);
  QCoreApplication::sendEvent(&timeline, &wheel_in);
  EXPECT_EQ(timeline.zoomDepth(), 3);
  EXPECT_LT(timeline.visibleEndSeconds() - timeline.visibleStartSeconds(), span_before);
  EXPECT_NEAR(timeline.timeAtX(cursor.x()), anchor, span_before * 1e-9);

  // Shift + wheel pans without adding to the stack.
  const double start_before_pan = timeline.visibleStartSeconds();
  const double span_before_pan = timeline.visibleEndSeconds() - timeline.visibleStartSeconds();
  QWheelEvent pan(cursor, timeline.mapToGlobal(cursor), QPoint(), QPoint(0, -120), Qt::NoButton,
                  Qt::ShiftModifier, Qt::NoScrollPhase, false);
  QCoreApplication::sendEvent(&timeline, &pan);
  EXPECT_EQ(timeline.zoomDepth(), 3);
  EXPECT_GT(timeline.visibleStartSeconds(), start_before_pan);
  EXPECT_NEAR(timeline.visibleEndSeconds() - timeline.visibleStartSeconds(), span_before_pan,
              span_before_pan * 1e-9);

  // Wheel back pops the wheel's zoom; a right click pops the rubber band's.
  QWheelEvent wheel_out(cursor, timeline.mapToGlobal(cursor), QPoint(), QPoint(0, -120),
                        Qt::NoButton, Qt::NoModifier, Qt::NoScrollPhase, false);
  QCoreApplication::sendEvent(&timeline, &wheel_out);
  EXPECT_EQ(timeline.zoomDepth(), 2);
  EXPECT_NEAR(timeline.visibleStartSeconds(), band_start, step * 1e-9);
  QTest::mouseClick(&timeline, Qt::RightButton, {}, compute_row.center());
  EXPECT_EQ(timeline.zoomDepth(), 1);
  EXPECT_DOUBLE_EQ(timeline.visibleStartSeconds(), step * 0.25);
  EXPECT_DOUBLE_EQ(timeline.visibleEndSeconds(), step * 0.5);
  EXPECT_TRUE(timeline.zoomOut());
  EXPECT_DOUBLE_EQ(timeline.visibleStartSeconds(), full_start);
  EXPECT_DOUBLE_EQ(timeline.visibleEndSeconds(), full_end);

  // A click without a drag is not a zoom; resetZoom forgets the stack.
  QTest::mouseClick(&timeline, Qt::LeftButton, {}, compute_row.center());
  EXPECT_EQ(timeline.zoomDepth(), 0);
  timeline.zoomTo(0, step * 0.1);
  timeline.zoomTo(0, step * 0.05);
  timeline.resetZoom();
  EXPECT_EQ(timeline.zoomDepth(), 0);
  EXPECT_DOUBLE_EQ(timeline.visibleEndSeconds(), full_end);
}

TEST(TimelineWidgetTest, TooltipsNameTheEventItsStartAndDuration) {
  const sim::Prediction prediction = sim::simulate(interleaved_pp4_plan(), a100());
  TimelineWidget timeline;
  timeline.setTimeline(prediction.timeline, 4);
  timeline.resize(1200, timeline.sizeHint().height());
  const sim::TimelineEvent* forward = nullptr;
  for (const sim::TimelineEvent& e : prediction.timeline.events)
    if (e.pipeline_rank == 1 && e.stream == sim::Stream::compute && e.name == "F2.1") forward = &e;
  ASSERT_NE(forward, nullptr);
  const QRect row = timeline.rowRect(1, sim::Stream::compute);
  const int x = int(timeline.xOfTime(forward->start_s + forward->duration_s / 2));
  const QString tip = timeline.toolTipAt(QPoint(x, row.center().y()));
  EXPECT_TRUE(tip.contains("F2.1")) << tip.toStdString();
  EXPECT_TRUE(tip.contains("forward of microbatch 2, model chunk 1")) << tip.toStdString();
  EXPECT_TRUE(tip.contains("PP rank 1")) << tip.toStdString();
  EXPECT_TRUE(tip.contains("start " + duration_text(forward->start_s))) << tip.toStdString();
  EXPECT_TRUE(tip.contains("duration " + duration_text(forward->duration_s))) << tip.toStdString();

  // Before rank 3's first forward its compute row is idle: the pipeline bubble.
  const QRect last_row = timeline.rowRect(3, sim::Stream::compute);
  const QString idle =
      timeline.toolTipAt(QPoint(int(timeline.xOfTime(0)) + 2, last_row.center().y()));
  EXPECT_TRUE(idle.contains("pipeline bubble")) << idle.toStdString();
  // The gutter has no tooltip.
  EXPECT_TRUE(timeline.toolTipAt(QPoint(5, row.center().y())).isEmpty());
}

}  // namespace
}  // namespace loom::gui
