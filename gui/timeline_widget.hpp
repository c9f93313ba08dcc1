#pragma once
// The simulated pipeline timeline as a Gantt chart: one row per pipeline rank (and its
// communication lanes), forward and backward in distinct colours with microbatch numbers,
// bubbles left empty; zoomable.
//
// Zoom is a stack, as in Hotspot's timeline: the wheel (towards the cursor) or a rubber band
// dragged with the left button pushes a narrower range, the wheel back, a right click or
// zoomOut() pops to the range before it. Shift + wheel pans the range that is shown.

#include "simulator/event_simulation.hpp"

#include <QWidget>

#include <QColor>

#include <functional>
#include <optional>
#include <vector>

namespace loom::gui {

class TimelineWidget : public QWidget {
  Q_OBJECT
 public:
  explicit TimelineWidget(QWidget* parent = nullptr);

  void setTimeline(const sim::Timeline& timeline, int pipeline_ranks);
  void clear();
  // Pipeline ranks shown (one row each, plus communication lanes).
  int pipelineRowCount() const;
  // Rows drawn: a compute row per pipeline rank plus its communication lanes that carry events.
  int rowCount() const { return int(rows_.size()); }

  // The time range shown, in seconds from the start of the step.
  double visibleStartSeconds() const { return visible_.start_s; }
  double visibleEndSeconds() const { return visible_.end_s; }
  // Ranges pushed by zooming in that zoomOut() can return to.
  int zoomDepth() const { return int(zoom_stack_.size()); }

  // Shows [start_s, end_s] (clamped to the step), remembering the range shown before.
  void zoomTo(double start_s, double end_s);
  // Returns to the range shown before the last zoom; false when nothing is zoomed.
  bool zoomOut();
  // Shows the whole step and forgets the zoom stack.
  void resetZoom();

  // Where time `seconds` is drawn, and the time at widget x (for tests and the mouse handlers).
  double xOfTime(double seconds) const;
  double timeAtX(double x) const;
  // Where a rank's row (compute) or lane is drawn; empty when it is not shown.
  QRect rowRect(int pipeline_rank, sim::Stream stream) const;
  // The tooltip text at a widget position; empty where nothing is drawn.
  QString toolTipAt(const QPoint& position) const;

  QSize sizeHint() const override;
  QSize minimumSizeHint() const override;

 signals:
  void visibleRangeChanged(double start_s, double end_s);

 protected:
  void paintEvent(QPaintEvent* event) override;
  bool event(QEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;

 private:
  struct Range {
    double start_s = 0;
    double end_s = 1;
  };
  struct Row {
    int pipeline_rank = 0;
    sim::Stream stream = sim::Stream::compute;
    int top = 0;  // widget y
    int height = 0;
    std::vector<size_t> events;  // indices into events_, by start time
  };

  struct LegendEntry {
    QString label;
    QColor colour;
    bool hatched = false;
  };

  void layoutRows();
  std::vector<LegendEntry> legendEntries() const;
  int layoutLegend(int widget_width,
                   const std::function<void(const LegendEntry&, int, int, int)>& place) const;
  int legendWidth() const;
  void showRange(Range range);
  Range fullRange() const;
  QRectF plotRect() const;
  int contentHeight() const;
  const Row* rowAt(int y) const;
  std::optional<size_t> eventAt(const QPoint& position) const;
  void paintAxis(QPainter& painter, const QRectF& plot) const;
  void paintRow(QPainter& painter, const Row& row, const QRectF& plot) const;
  void paintLegend(QPainter& painter) const;

  std::vector<sim::TimelineEvent> events_;
  std::vector<double> recompute_per_backward_s_;  // by pipeline rank
  std::vector<Row> rows_;
  int pipeline_ranks_ = 0;
  double step_time_s_ = 0;
  Range visible_;
  std::vector<Range> zoom_stack_;
  std::optional<int> drag_origin_x_;
  int drag_current_x_ = 0;
  int legend_rows_ = 0;
};

}  // namespace loom::gui
