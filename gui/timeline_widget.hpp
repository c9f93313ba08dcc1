#pragma once
// The simulated pipeline timeline as a Gantt chart: one row per pipeline rank (and its
// communication lanes), forward and backward in distinct colours with microbatch numbers,
// bubbles left empty; zoomable. Where everything goes, the zoom stack and what lies under the
// mouse are TimelineLayout's (gui/models, tested without a screen); this widget paints and
// forwards input.
//
// Zoom is a stack, as in Hotspot's timeline: the wheel (towards the cursor) or a rubber band
// dragged with the left button pushes a narrower range, the wheel back, a right click or
// zoomOut() pops to the range before it. Shift + wheel pans the range that is shown.

#include "gui/models/timeline_layout.hpp"
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
  int pipelineRowCount() const { return layout_.pipelineRanks(); }
  // Rows drawn: a compute row per pipeline rank plus its communication lanes that carry events.
  int rowCount() const { return int(layout_.rows().size()); }

  // The time range shown, in seconds from the start of the step.
  double visibleStartSeconds() const { return layout_.visibleRange().start_s; }
  double visibleEndSeconds() const { return layout_.visibleRange().end_s; }
  // Ranges pushed by zooming in that zoomOut() can return to.
  int zoomDepth() const { return layout_.zoomDepth(); }

  // Shows [start_s, end_s] (clamped to the step), remembering the range shown before.
  void zoomTo(double start_s, double end_s);
  // Returns to the range shown before the last zoom; false when nothing is zoomed.
  bool zoomOut();
  // Shows the whole step and forgets the zoom stack.
  void resetZoom();

  // Where time `seconds` is drawn, and the time at widget x (for tests and the mouse handlers).
  double xOfTime(double seconds) const { return layout().xOfTime(seconds); }
  double timeAtX(double x) const { return layout().timeAtX(x); }
  // Where a rank's row (compute) or lane is drawn; empty when it is not shown.
  QRect rowRect(int pipeline_rank, sim::Stream stream) const {
    return layout().rowRect(pipeline_rank, stream);
  }
  // The tooltip text at a widget position; empty where nothing is drawn.
  QString toolTipAt(const QPoint& position) const;

  // The fill of a box of that kind, and of its legend swatch.
  static QColor colourOf(TimelineEventKind kind);
  // The step's extent under the boxes: what shows between them is the pipeline bubble.
  static QColor bubbleColour();
  static QColor bubbleHatchColour();

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
  struct LegendEntry {
    QString label;
    QColor colour;
    bool hatched = false;
  };

  // The layout at the widget's current width. A hidden widget is resized without a resize event
  // (Qt sends it on show), so the width is taken from the widget each time it is needed.
  const TimelineLayout& layout() const;
  TimelineLayout& layout();
  // Repaints and tells listeners after the range shown changed.
  void rangeChanged();
  std::vector<LegendEntry> legendEntries() const;
  int layoutLegend(int widget_width,
                   const std::function<void(const LegendEntry&, int, int, int)>& place) const;
  int legendWidth() const;
  int contentHeight() const;
  void paintAxis(QPainter& painter, const QRectF& plot) const;
  void paintRow(QPainter& painter, const TimelineRow& row, const QRectF& plot) const;
  void paintLegend(QPainter& painter) const;

  mutable TimelineLayout layout_;  // mutable: its width follows the widget's (see layout())
  std::optional<int> drag_origin_x_;
  int drag_current_x_ = 0;
  int legend_rows_ = 0;
};

}  // namespace loom::gui
