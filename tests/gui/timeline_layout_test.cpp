// The pipeline timeline's layout without a screen: rows and lanes, the mapping between time and
// x, the zoom stack, what lies under a point, and the tooltip text for it. A hand-made timeline
// of two pipeline ranks on a 1134 px wide widget (a plot 1000 px wide) keeps every number
// checkable by hand.

#include "gui/models/timeline_layout.hpp"
#include "gui/models/breakdown_model.hpp"
#include "gui/models/timeline_tooltip.hpp"

#include <gtest/gtest.h>

#include <string>

namespace loom::gui {
namespace {

using sim::Stream;

constexpr int kWidgetWidth = TimelineLayout::kGutterWidth + 1000 + TimelineLayout::kRightMargin;
constexpr double kStep_s = 10;

sim::TimelineEvent event(int rank, Stream stream, std::string name, double start_s,
                         double duration_s, int microbatch = -1, int chunk = 0) {
  return {rank, stream, std::move(name), start_s, duration_s, microbatch, chunk};
}

// Rank 0 computes F0 F1 · idle · B0 · idle · the optimizer; rank 1 waits for F0, then F0 B0.
// Both send over the pipeline; nobody uses the dp or tp streams. Listed out of order, with one
// event of a rank that is not shown.
sim::Timeline two_rank_timeline() {
  sim::Timeline timeline;
  timeline.step_time_s = kStep_s;
  timeline.ranks.resize(2);
  timeline.ranks[0].recompute_s = 0.5;
  timeline.events = {
      event(0, Stream::compute, "optimizer step", 9, 0.5),
      event(0, Stream::compute, "B0", 3, 2, 0),
      event(0, Stream::compute, "F1", 1, 1, 1),
      event(0, Stream::compute, "F0", 0, 1, 0),
      event(0, Stream::pp_comm, "send & recv 0", 1, 0.2, 0),
      event(1, Stream::compute, "F0", 1.2, 1, 0),
      event(1, Stream::compute, "B0", 2.2, 0.8, 0),
      event(1, Stream::pp_comm, "send grad 0", 3, 1e-4, 0),  // far less than a pixel
      event(2, Stream::compute, "F0", 0, 1, 0),              // rank 2 is not shown
  };
  return timeline;
}

// The layout of two_rank_timeline(), showing [0, 10 s]: x = 118 + 100 px per second.
TimelineLayout two_rank_layout() {
  TimelineLayout layout;
  layout.setTimeline(two_rank_timeline(), 2);
  layout.setWidgetWidth(kWidgetWidth);
  layout.zoomTo(0, kStep_s);
  return layout;
}

double x_at(double seconds) {
  return TimelineLayout::kGutterWidth + 100 * seconds;
}

// The point in the middle of `row` at time `seconds`.
QPointF at(const TimelineLayout& layout, int rank, Stream stream, double seconds) {
  return {x_at(seconds), layout.rowRect(rank, stream).center().y() + 0.5};
}

const std::string& name_at(const TimelineLayout& layout, const QPointF& position) {
  static const std::string none = "(none)";
  const std::optional<size_t> found = layout.eventAt(position);
  return found ? layout.events()[*found].name : none;
}

TEST(TimelineLayoutTest, EventKindsFollowTheSimulatorsNames) {
  EXPECT_EQ(timeline_event_kind(event(0, Stream::compute, "F3", 0, 1, 3)),
            TimelineEventKind::forward);
  EXPECT_EQ(timeline_event_kind(event(0, Stream::compute, "B2.1", 0, 1, 2, 1)),
            TimelineEventKind::backward);
  EXPECT_EQ(timeline_event_kind(event(0, Stream::compute, "optimizer step", 0, 1)),
            TimelineEventKind::optimizer);
  // A compute action without a microbatch is not a forward, whatever its name starts with.
  EXPECT_EQ(timeline_event_kind(event(0, Stream::compute, "Flush", 0, 1)),
            TimelineEventKind::optimizer);
  EXPECT_EQ(timeline_event_kind(event(0, Stream::pp_comm, "F0", 0, 1, 0)),
            TimelineEventKind::pp_comm);
  EXPECT_EQ(timeline_event_kind(event(0, Stream::dp_comm, "grad sync", 0, 1)),
            TimelineEventKind::dp_comm);
  EXPECT_EQ(timeline_event_kind(event(0, Stream::tp_comm, "F0", 0, 1, 0)),
            TimelineEventKind::tp_comm);
}

TEST(TimelineLayoutTest, EachRankHasAComputeRowAndTheLanesThatCarryEvents) {
  const TimelineLayout layout = two_rank_layout();
  EXPECT_EQ(layout.pipelineRanks(), 2);
  EXPECT_EQ(layout.events().size(), 8u);  // rank 2's event is dropped
  EXPECT_TRUE(layout.hasLane(Stream::pp_comm));
  EXPECT_FALSE(layout.hasLane(Stream::dp_comm));
  EXPECT_FALSE(layout.hasLane(Stream::tp_comm));

  // Under the axis, a compute row then its lane, a pixel apart; a gap between ranks.
  const std::vector<TimelineRow>& rows = layout.rows();
  ASSERT_EQ(rows.size(), 4u);
  const int first_top = TimelineLayout::kAxisHeight + 4;
  const int rank_height = TimelineLayout::kComputeRowHeight + 1 + TimelineLayout::kLaneHeight + 1 +
                          TimelineLayout::kRankGap;
  const std::pair<int, Stream> expected[] = {
      {0, Stream::compute}, {0, Stream::pp_comm}, {1, Stream::compute}, {1, Stream::pp_comm}};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].pipeline_rank, expected[i].first) << i;
    EXPECT_EQ(rows[i].stream, expected[i].second) << i;
  }
  EXPECT_EQ(rows[0].top, first_top);
  EXPECT_EQ(rows[0].height, TimelineLayout::kComputeRowHeight);
  EXPECT_EQ(rows[1].top, rows[0].bottom() + 1);
  EXPECT_EQ(rows[1].height, TimelineLayout::kLaneHeight);
  EXPECT_EQ(rows[2].top, first_top + rank_height);

  // Each row holds its own events, sorted by start.
  std::vector<std::string> rank0_compute;
  for (size_t i : rows[0].events) rank0_compute.push_back(layout.events()[i].name);
  EXPECT_EQ(rank0_compute, (std::vector<std::string>{"F0", "F1", "B0", "optimizer step"}));
  EXPECT_EQ(rows[3].events.size(), 1u);

  // Rank 0's recompute is shared by its one backward; rank 1 recomputes nothing.
  EXPECT_DOUBLE_EQ(layout.recomputePerBackwardSeconds(0), 0.5);
  EXPECT_DOUBLE_EQ(layout.recomputePerBackwardSeconds(1), 0.0);
  EXPECT_TRUE(layout.hasRecompute());
}

TEST(TimelineLayoutTest, AStreamUsedByOneRankGivesEveryRankItsLane) {
  sim::Timeline timeline = two_rank_timeline();
  timeline.events.push_back(event(1, Stream::dp_comm, "grad sync", 8, 1));
  TimelineLayout layout;
  layout.setTimeline(timeline, 2);
  ASSERT_EQ(layout.rows().size(), 6u);
  EXPECT_EQ(layout.rows()[2].stream, Stream::dp_comm);
  EXPECT_EQ(layout.rows()[2].pipeline_rank, 0);
  EXPECT_TRUE(layout.rows()[2].events.empty());
  EXPECT_EQ(layout.rows()[5].stream, Stream::dp_comm);
  EXPECT_EQ(layout.rows()[5].events.size(), 1u);
}

TEST(TimelineLayoutTest, AnEmptyTimelineHasNoRowsAndAUnitRange) {
  TimelineLayout layout;
  layout.setTimeline(sim::Timeline{}, 0);
  layout.setWidgetWidth(kWidgetWidth);
  EXPECT_TRUE(layout.rows().empty());
  EXPECT_FALSE(layout.hasRecompute());
  EXPECT_DOUBLE_EQ(layout.fullRange().start_s, 0.0);
  EXPECT_DOUBLE_EQ(layout.fullRange().end_s, 1.0);
  EXPECT_EQ(layout.rowAt(50), nullptr);
  EXPECT_FALSE(layout.eventAt(QPointF(500, 50)));
  EXPECT_TRUE(timeline_tooltip(layout, QPointF(500, 50)).isEmpty());
}

TEST(TimelineLayoutTest, ThePlotLiesRightOfTheGutterAndTimeMapsToXBothWays) {
  TimelineLayout layout;
  layout.setTimeline(two_rank_timeline(), 2);
  layout.setWidgetWidth(kWidgetWidth);
  const QRectF plot = layout.plotRect();
  EXPECT_EQ(plot.left(), TimelineLayout::kGutterWidth);
  EXPECT_EQ(plot.width(), 1000);
  EXPECT_EQ(plot.top(), TimelineLayout::kAxisHeight);
  EXPECT_EQ(plot.bottom(), layout.rows().back().bottom() + 2);

  // The whole step, with 1 % room after the last box, fills the plot.
  EXPECT_DOUBLE_EQ(layout.visibleRange().start_s, 0.0);
  EXPECT_DOUBLE_EQ(layout.visibleRange().end_s, kStep_s * 1.01);
  EXPECT_DOUBLE_EQ(layout.xOfTime(0), plot.left());
  EXPECT_DOUBLE_EQ(layout.xOfTime(kStep_s * 1.01), plot.right());
  for (double t : {0.0, 1.25, 7.5, 10.0}) EXPECT_NEAR(layout.timeAtX(layout.xOfTime(t)), t, 1e-12);

  // Zoomed to [2 s, 4 s], the same 1000 px hold two seconds; a narrower widget, fewer pixels.
  layout.zoomTo(2, 4);
  EXPECT_DOUBLE_EQ(layout.xOfTime(2), plot.left());
  EXPECT_DOUBLE_EQ(layout.xOfTime(3), plot.left() + 500);
  EXPECT_DOUBLE_EQ(layout.timeAtX(plot.left() + 250), 2.5);
  layout.setWidgetWidth(kWidgetWidth - 500);
  EXPECT_DOUBLE_EQ(layout.xOfTime(3), plot.left() + 250);
  // Never a plot less than a pixel wide.
  layout.setWidgetWidth(10);
  EXPECT_EQ(layout.plotRect().width(), 1);
}

TEST(TimelineLayoutTest, ZoomingPushesRangesAndZoomingOutPopsThem) {
  TimelineLayout layout;
  layout.setTimeline(two_rank_timeline(), 2);
  layout.setWidgetWidth(kWidgetWidth);
  const TimeRange full = layout.fullRange();
  EXPECT_EQ(layout.zoomDepth(), 0);
  EXPECT_FALSE(layout.zoomOut());

  layout.zoomTo(4, 2);  // either order
  EXPECT_DOUBLE_EQ(layout.visibleRange().start_s, 2);
  EXPECT_DOUBLE_EQ(layout.visibleRange().end_s, 4);
  layout.zoomTo(-5, 50);  // clamped to the step
  EXPECT_DOUBLE_EQ(layout.visibleRange().start_s, full.start_s);
  EXPECT_DOUBLE_EQ(layout.visibleRange().end_s, full.end_s);
  // A range narrower than a millionth of the step is widened to that, around its centre.
  layout.zoomTo(5, 5);
  const double minimum = full.span_s() * 1e-6;
  EXPECT_NEAR(layout.visibleRange().span_s(), minimum, minimum * 1e-6);
  EXPECT_NEAR(layout.visibleRange().start_s, 5 - minimum / 2, minimum * 1e-6);
  EXPECT_EQ(layout.zoomDepth(), 3);

  ASSERT_TRUE(layout.zoomOut());
  EXPECT_DOUBLE_EQ(layout.visibleRange().end_s, full.end_s);
  ASSERT_TRUE(layout.zoomOut());
  EXPECT_DOUBLE_EQ(layout.visibleRange().start_s, 2);
  EXPECT_DOUBLE_EQ(layout.visibleRange().end_s, 4);
  EXPECT_EQ(layout.zoomDepth(), 1);

  layout.resetZoom();
  EXPECT_EQ(layout.zoomDepth(), 0);
  EXPECT_DOUBLE_EQ(layout.visibleRange().end_s, full.end_s);
  // A new timeline forgets the stack too.
  layout.zoomTo(1, 2);
  layout.setTimeline(two_rank_timeline(), 2);
  EXPECT_EQ(layout.zoomDepth(), 0);
  EXPECT_DOUBLE_EQ(layout.visibleRange().end_s, full.end_s);
}

TEST(TimelineLayoutTest, TheWheelZoomsAroundTheCursorAndPansWithinTheStep) {
  TimelineLayout layout = two_rank_layout();
  const TimeRange full = layout.fullRange();

  // One notch keeps 80 % of the span; the time under the cursor stays under it.
  const double cursor_x = x_at(6);
  layout.zoomInAround(cursor_x, 1);
  EXPECT_EQ(layout.zoomDepth(), 2);
  EXPECT_NEAR(layout.visibleRange().span_s(), kStep_s * TimelineLayout::kWheelZoomFactor, 1e-12);
  EXPECT_NEAR(layout.timeAtX(cursor_x), 6, 1e-12);
  // Over the gutter, the plot's left edge is the anchor.
  const double start = layout.visibleRange().start_s;
  layout.zoomInAround(10, 2);
  EXPECT_NEAR(layout.visibleRange().start_s, start, 1e-12);

  // Panning moves the range without pushing it: wheel down is later, wheel up earlier.
  const TimeRange before = layout.visibleRange();
  layout.pan(-1);
  EXPECT_EQ(layout.zoomDepth(), 3);
  EXPECT_NEAR(layout.visibleRange().start_s,
              before.start_s + before.span_s() * TimelineLayout::kPanPerNotch, 1e-12);
  EXPECT_NEAR(layout.visibleRange().span_s(), before.span_s(), 1e-12);
  // ... and stops at either end of the step.
  layout.pan(-1000);
  EXPECT_NEAR(layout.visibleRange().end_s, full.end_s, 1e-12);
  layout.pan(1000);
  EXPECT_NEAR(layout.visibleRange().start_s, 0, 1e-12);
  EXPECT_NEAR(layout.visibleRange().span_s(), before.span_s(), 1e-12);
}

TEST(TimelineLayoutTest, HitTestingFindsRowsEventsAndBubbles) {
  TimelineLayout layout = two_rank_layout();
  const std::vector<TimelineRow>& rows = layout.rows();

  // Rows: from their top to the pixel above their bottom; nothing between them or above.
  EXPECT_EQ(layout.rowAt(rows[0].top), &rows[0]);
  EXPECT_EQ(layout.rowAt(rows[0].bottom() - 1), &rows[0]);
  EXPECT_EQ(layout.rowAt(rows[0].bottom()), nullptr);
  EXPECT_EQ(layout.rowAt(rows[2].top - 1), nullptr);  // the gap between ranks
  EXPECT_EQ(layout.rowAt(TimelineLayout::kAxisHeight), nullptr);

  // A row's rectangle is its band of the plot; a lane that is not laid out has none.
  EXPECT_EQ(layout.rowRect(1, Stream::compute),
            QRect(TimelineLayout::kGutterWidth, rows[2].top, 1000, rows[2].height));
  EXPECT_TRUE(layout.rowRect(0, Stream::dp_comm).isEmpty());
  EXPECT_TRUE(layout.rowRect(2, Stream::compute).isEmpty());

  // Events: the box under the point, in its own row only.
  EXPECT_EQ(name_at(layout, at(layout, 0, Stream::compute, 0.5)), "F0");
  EXPECT_EQ(name_at(layout, at(layout, 0, Stream::compute, 1.5)), "F1");
  EXPECT_EQ(name_at(layout, at(layout, 0, Stream::compute, 4)), "B0");
  EXPECT_EQ(name_at(layout, at(layout, 0, Stream::pp_comm, 1.1)), "send & recv 0");
  EXPECT_EQ(name_at(layout, at(layout, 1, Stream::compute, 0.5)), "(none)");
  EXPECT_EQ(name_at(layout, at(layout, 0, Stream::compute, 2.5)), "(none)");
  // Nothing in the gutter, even where the time left of the plot would match.
  layout.zoomTo(0.5, 1);
  EXPECT_FALSE(layout.eventAt(
      QPointF(TimelineLayout::kGutterWidth - 1, layout.rowRect(0, Stream::compute).center().y())));
  layout.zoomOut();
  // A box far narrower than a pixel is found a pixel around it (10 ms at 100 px per second).
  EXPECT_EQ(name_at(layout, at(layout, 1, Stream::pp_comm, 3.005)), "send grad 0");
  EXPECT_EQ(name_at(layout, at(layout, 1, Stream::pp_comm, 2.995)), "send grad 0");
  EXPECT_EQ(name_at(layout, at(layout, 1, Stream::pp_comm, 3.03)), "(none)");

  // Bubbles: a compute row's idle stretch from the box before to the box after.
  const std::optional<TimeRange> between = layout.idleAt(at(layout, 0, Stream::compute, 2.5));
  ASSERT_TRUE(between);
  EXPECT_DOUBLE_EQ(between->start_s, 2);
  EXPECT_DOUBLE_EQ(between->end_s, 3);
  const std::optional<TimeRange> warm_up = layout.idleAt(at(layout, 1, Stream::compute, 0.5));
  ASSERT_TRUE(warm_up);
  EXPECT_DOUBLE_EQ(warm_up->start_s, 0);
  EXPECT_DOUBLE_EQ(warm_up->end_s, 1.2);
  const std::optional<TimeRange> after_backward = layout.idleAt(at(layout, 1, Stream::compute, 6));
  ASSERT_TRUE(after_backward);
  EXPECT_DOUBLE_EQ(after_backward->start_s, 3);
  EXPECT_DOUBLE_EQ(after_backward->end_s, kStep_s);
  // Not on a box, not on a lane, not after the step.
  EXPECT_FALSE(layout.idleAt(at(layout, 0, Stream::compute, 0.5)));
  EXPECT_FALSE(layout.idleAt(at(layout, 0, Stream::pp_comm, 5)));
  layout.resetZoom();
  EXPECT_FALSE(layout.idleAt(
      QPointF(layout.xOfTime(kStep_s * 1.005), layout.rowRect(0, Stream::compute).center().y())));
}

TEST(TimelineLayoutTest, TooltipsNameWhatIsUnderThePoint) {
  const TimelineLayout layout = two_rank_layout();
  const QString forward = timeline_tooltip(layout, at(layout, 0, Stream::compute, 1.5));
  EXPECT_EQ(forward, "<b>F1</b>: forward of microbatch 1<br>PP rank 0<br>start " +
                         duration_text(1) + ", duration " + duration_text(1))
      << forward.toStdString();

  // A backward says how much of it is recompute.
  const QString backward = timeline_tooltip(layout, at(layout, 0, Stream::compute, 4));
  EXPECT_TRUE(backward.contains("backward of microbatch 0")) << backward.toStdString();
  EXPECT_TRUE(backward.contains("of which recompute " + duration_text(0.5)))
      << backward.toStdString();
  EXPECT_FALSE(timeline_tooltip(layout, at(layout, 1, Stream::compute, 2.5)).contains("recompute"));

  // Names are HTML-escaped: the tooltip is rich text.
  const QString transfer = timeline_tooltip(layout, at(layout, 0, Stream::pp_comm, 1.1));
  EXPECT_TRUE(transfer.contains("<b>send &amp; recv 0</b>: pipeline transfer"))
      << transfer.toStdString();

  const QString idle = timeline_tooltip(layout, at(layout, 1, Stream::compute, 0.5));
  EXPECT_EQ(idle, "<b>idle</b>: pipeline bubble of PP rank 1<br>from " + duration_text(0) +
                      " for " + duration_text(1.2))
      << idle.toStdString();

  // Nothing to say in the gutter, on an idle lane or between rows.
  EXPECT_TRUE(
      timeline_tooltip(layout, QPointF(5, at(layout, 0, Stream::compute, 0).y())).isEmpty());
  EXPECT_TRUE(timeline_tooltip(layout, at(layout, 0, Stream::pp_comm, 5)).isEmpty());
  EXPECT_TRUE(timeline_tooltip(layout, QPointF(x_at(1.5), layout.rows()[0].bottom())).isEmpty());
}

}  // namespace
}  // namespace loom::gui
