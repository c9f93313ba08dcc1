#pragma once
// Where the pipeline timeline's parts go, without a screen: one row per pipeline rank's compute
// plus a lane per communication stream that carries events, the time range shown and its zoom
// stack (as in Hotspot's timeline), the mapping between time and x, and what lies under a point.
// TimelineWidget paints what this lays out and forwards its input here.
//
// Coordinates are the widget's pixels: the rows start under the time axis, the plot starts right
// of the gutter that holds the row labels and ends a margin before the widget's right edge.

#include "simulator/event_simulation.hpp"

#include <QPointF>
#include <QRect>
#include <QRectF>

#include <cstddef>
#include <optional>
#include <vector>

namespace loom::gui {

// What a box on the timeline is, for its colour, its legend entry and its tooltip.
enum class TimelineEventKind { forward, backward, optimizer, pp_comm, dp_comm, tp_comm };
TimelineEventKind timeline_event_kind(const sim::TimelineEvent& event);

// Seconds from the start of the step.
struct TimeRange {
  double start_s = 0;
  double end_s = 1;
  double span_s() const { return end_s - start_s; }
};

struct TimelineRow {
  int pipeline_rank = 0;
  sim::Stream stream = sim::Stream::compute;
  int top = 0;  // widget y
  int height = 0;
  std::vector<size_t> events;  // indices into TimelineLayout::events(), by start time
  int bottom() const { return top + height; }
};

class TimelineLayout {
 public:
  static constexpr int kGutterWidth = 118;  // row labels
  static constexpr int kRightMargin = 16;
  static constexpr int kAxisHeight = 30;
  static constexpr int kComputeRowHeight = 30;
  static constexpr int kLaneHeight = 13;
  static constexpr int kRankGap = 9;
  static constexpr double kWheelZoomFactor = 0.8;  // span kept per wheel notch
  static constexpr double kPanPerNotch = 0.1;      // of the span shown
  static constexpr double kMinimumSpan_s = 1e-7;  // below this the simulator's numbers mean nothing

  // Lays out the events of pipeline ranks [0, pipeline_ranks) and shows the whole step, forgetting
  // the zoom stack.
  void setTimeline(const sim::Timeline& timeline, int pipeline_ranks);
  // The plot's width follows the widget's.
  void setWidgetWidth(int width) { widget_width_ = width; }
  int widgetWidth() const { return widget_width_; }

  const std::vector<sim::TimelineEvent>& events() const { return events_; }
  const std::vector<TimelineRow>& rows() const { return rows_; }
  int pipelineRanks() const { return pipeline_ranks_; }
  double stepTimeSeconds() const { return step_time_s_; }
  // Whether any rank has a lane for `stream` (a lane no rank uses is not laid out).
  bool hasLane(sim::Stream stream) const;
  // The recompute inside each backward box of a rank (drawn as the box's leading part).
  double recomputePerBackwardSeconds(int pipeline_rank) const;
  bool hasRecompute() const;

  // The area the boxes are drawn in, under the axis and right of the gutter.
  QRectF plotRect() const;
  // Where time `seconds` is drawn, and the time at x.
  double xOfTime(double seconds) const;
  double timeAtX(double x) const;

  // The zoom stack: zooming in pushes the range shown, zooming out pops back to it.
  TimeRange visibleRange() const { return visible_; }
  // The whole step, with a little room after the last box.
  TimeRange fullRange() const;
  int zoomDepth() const { return int(zoom_stack_.size()); }
  // Shows [start_s, end_s] (clamped to the step, at least kMinimumSpan_s), remembering the range
  // shown before.
  void zoomTo(double start_s, double end_s);
  // Returns to the range shown before the last zoom; false when nothing is zoomed.
  bool zoomOut();
  // Shows the whole step and forgets the zoom stack.
  void resetZoom();
  // The wheel: zooms in by `notches` (> 0) keeping the time at x (or at the plot's left edge, for
  // an x in the gutter) where it is.
  void zoomInAround(double x, double notches);
  // Moves the range shown without adding to the stack, never past the step; positive notches
  // (wheel up) move earlier.
  void pan(double notches);

  // The row (compute or lane) drawn at widget y; null between and outside the rows.
  const TimelineRow* rowAt(double y) const;
  // Where a rank's row or lane is drawn in the plot; empty when it is not shown.
  QRect rowRect(int pipeline_rank, sim::Stream stream) const;
  // The event drawn at `position` (an index into events()); a sub-pixel box counts a pixel wide.
  std::optional<size_t> eventAt(const QPointF& position) const;
  // The idle stretch (pipeline bubble) of a compute row around `position`, when no event is
  // drawn there and it lies within the step.
  std::optional<TimeRange> idleAt(const QPointF& position) const;

 private:
  void layOutRows();

  std::vector<sim::TimelineEvent> events_;
  std::vector<double> recompute_per_backward_s_;  // by pipeline rank
  std::vector<TimelineRow> rows_;
  int pipeline_ranks_ = 0;
  double step_time_s_ = 0;
  int widget_width_ = 0;
  TimeRange visible_;
  std::vector<TimeRange> zoom_stack_;
};

}  // namespace loom::gui
