#include "gui/timeline_widget.hpp"

#include "gui/models/timeline_tooltip.hpp"

#include <QHelpEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QResizeEvent>
#include <QToolTip>
#include <QWheelEvent>

#include <algorithm>
#include <cmath>

namespace loom::gui {
namespace {

constexpr int kGutterWidth = TimelineLayout::kGutterWidth;
constexpr int kRightMargin = TimelineLayout::kRightMargin;
constexpr int kAxisHeight = TimelineLayout::kAxisHeight;
constexpr int kPreferredWidth = 900;
constexpr int kMinimumWidth = kGutterWidth + 240;
constexpr int kLegendRowHeight = 22;
constexpr int kDragThreshold = 4;  // px: a shorter drag is a click, not a zoom

using Kind = TimelineEventKind;

const QColor kRecomputeColour(0xb0, 0x7a, 0xa1);
const QColor kLaneColour(0xfa, 0xfa, 0xfa);
const QColor kGridColour(0xe0, 0xe0, 0xe0);

QColor text_colour_on(const QColor& fill) {
  const double luminance = 0.299 * fill.redF() + 0.587 * fill.greenF() + 0.114 * fill.blueF();
  return luminance > 0.55 ? QColor(0x20, 0x20, 0x20) : Qt::white;
}

QString lane_label(sim::Stream stream, int rank) {
  switch (stream) {
    case sim::Stream::compute:
      return TimelineWidget::tr("PP rank %1").arg(rank);
    case sim::Stream::pp_comm:
      return TimelineWidget::tr("pp send/recv");
    case sim::Stream::dp_comm:
      return TimelineWidget::tr("dp grad sync");
    case sim::Stream::tp_comm:
      return TimelineWidget::tr("tp collectives");
  }
  return {};
}

struct TimeUnit {
  double per_second;
  QString name;
};

// The unit that keeps axis labels short for the span shown.
TimeUnit unit_for(double span_s) {
  if (span_s >= 2.0) return {1.0, QStringLiteral("s")};
  if (span_s >= 2e-3) return {1e3, QStringLiteral("ms")};
  return {1e6, QStringLiteral("µs")};
}

// 1, 2 or 5 times a power of ten, at least `raw`.
double nice_step(double raw) {
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

}  // namespace

QColor TimelineWidget::colourOf(TimelineEventKind kind) {
  switch (kind) {
    case Kind::forward:
      return {0x4e, 0x79, 0xa7};
    case Kind::backward:
      return {0xf2, 0x8e, 0x2b};
    case Kind::optimizer:
      return {0x59, 0xa1, 0x4f};
    case Kind::pp_comm:
      return {0x76, 0xb7, 0xb2};
    case Kind::dp_comm:
      return {0xed, 0xc9, 0x48};
    case Kind::tp_comm:
      return {0x9c, 0x75, 0x5f};
  }
  return Qt::gray;
}

QColor TimelineWidget::bubbleColour() {
  return {0xf4, 0xf4, 0xf4};
}
QColor TimelineWidget::bubbleHatchColour() {
  return {0xd0, 0xd0, 0xd0};
}

TimelineWidget::TimelineWidget(QWidget* parent) : QWidget(parent) {
  setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
  setToolTip(QString());  // tooltips come from event(), per box
}

const TimelineLayout& TimelineWidget::layout() const {
  layout_.setWidgetWidth(width());
  return layout_;
}

TimelineLayout& TimelineWidget::layout() {
  layout_.setWidgetWidth(width());
  return layout_;
}

void TimelineWidget::setTimeline(const sim::Timeline& timeline, int pipeline_ranks) {
  layout().setTimeline(timeline, pipeline_ranks);
  legend_rows_ = layout().rows().empty() ? 0 : layoutLegend(legendWidth(), {});
  rangeChanged();
  updateGeometry();
}

void TimelineWidget::clear() {
  setTimeline(sim::Timeline{}, 0);
}

void TimelineWidget::rangeChanged() {
  update();
  const TimeRange visible = layout().visibleRange();
  emit visibleRangeChanged(visible.start_s, visible.end_s);
}

void TimelineWidget::zoomTo(double start_s, double end_s) {
  layout().zoomTo(start_s, end_s);
  rangeChanged();
}

bool TimelineWidget::zoomOut() {
  if (!layout().zoomOut()) return false;
  rangeChanged();
  return true;
}

void TimelineWidget::resetZoom() {
  layout().resetZoom();
  rangeChanged();
}

int TimelineWidget::contentHeight() const {
  if (layout().rows().empty()) return kAxisHeight + 40;
  return layout().rows().back().bottom() + 10 + legend_rows_ * kLegendRowHeight + 4;
}

QSize TimelineWidget::sizeHint() const {
  return {kPreferredWidth, contentHeight()};
}

QSize TimelineWidget::minimumSizeHint() const {
  return {kMinimumWidth, contentHeight()};
}

QString TimelineWidget::toolTipAt(const QPoint& position) const {
  return timeline_tooltip(layout(), position);
}

bool TimelineWidget::event(QEvent* event) {
  if (event->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(event);
    const QString text = toolTipAt(help->pos());
    if (text.isEmpty()) {
      QToolTip::hideText();
      event->ignore();
    } else {
      QToolTip::showText(help->globalPos(), text, this);
    }
    return true;
  }
  return QWidget::event(event);
}

void TimelineWidget::wheelEvent(QWheelEvent* event) {
  if (layout().rows().empty()) return QWidget::wheelEvent(event);
  const QPoint angle = event->angleDelta();
  const bool pan =
      event->modifiers().testFlag(Qt::ShiftModifier) || (angle.y() == 0 && angle.x() != 0);
  const double notches = double(angle.y() != 0 ? angle.y() : angle.x()) / 120.0;
  if (notches == 0) return event->ignore();
  if (pan) {
    layout().pan(notches);
    rangeChanged();
  } else if (notches > 0) {
    layout().zoomInAround(event->position().x(), notches);
    rangeChanged();
  } else if (!zoomOut()) {
    return event->ignore();  // nothing to zoom out of: let an enclosing scroll area scroll
  }
  event->accept();
}

void TimelineWidget::mousePressEvent(QMouseEvent* event) {
  const int x = int(event->position().x());
  if (event->button() == Qt::RightButton) {
    zoomOut();
    return event->accept();
  }
  if (event->button() == Qt::LeftButton && x >= kGutterWidth && !layout().rows().empty()) {
    drag_origin_x_ = x;
    drag_current_x_ = x;
    return event->accept();
  }
  QWidget::mousePressEvent(event);
}

void TimelineWidget::mouseMoveEvent(QMouseEvent* event) {
  if (!drag_origin_x_) return QWidget::mouseMoveEvent(event);
  const QRectF plot = layout().plotRect();
  drag_current_x_ = int(std::clamp(event->position().x(), plot.left(), plot.right()));
  update();
}

void TimelineWidget::mouseReleaseEvent(QMouseEvent* event) {
  if (event->button() != Qt::LeftButton || !drag_origin_x_)
    return QWidget::mouseReleaseEvent(event);
  const int from = std::min(*drag_origin_x_, drag_current_x_),
            to = std::max(*drag_origin_x_, drag_current_x_);
  drag_origin_x_.reset();
  if (to - from >= kDragThreshold) zoomTo(timeAtX(from), timeAtX(to));
  update();
}

void TimelineWidget::paintEvent(QPaintEvent*) {
  QPainter painter(this);
  painter.fillRect(rect(), palette().base());
  if (layout().rows().empty()) {
    painter.setPen(palette().color(QPalette::PlaceholderText));
    painter.drawText(rect(), Qt::AlignCenter, tr("No timeline: pick a plan to simulate it"));
    return;
  }
  const QRectF plot = layout().plotRect();
  paintAxis(painter, plot);
  for (const TimelineRow& row : layout().rows()) paintRow(painter, row, plot);
  if (drag_origin_x_) {
    const QRectF band(QPointF(std::min(*drag_origin_x_, drag_current_x_), plot.top()),
                      QPointF(std::max(*drag_origin_x_, drag_current_x_), plot.bottom()));
    painter.fillRect(band, QColor(0x1e, 0x88, 0xe5, 50));
    painter.setPen(QColor(0x1e, 0x88, 0xe5));
    painter.drawRect(band);
  }
  paintLegend(painter);
}

void TimelineWidget::paintAxis(QPainter& painter, const QRectF& plot) const {
  const TimeRange visible = layout().visibleRange();
  const double span = visible.span_s();
  const TimeUnit unit = unit_for(span);
  const QFontMetrics metrics(font());
  // About one label per 110 px, so that labels such as "1234.5 ms" never touch.
  const double step = nice_step(span / std::max(1.0, plot.width() / 110.0));
  const int decimals = std::max(0, int(-std::floor(std::log10(step * unit.per_second) + 1e-9)));
  painter.setPen(palette().color(QPalette::Text));
  painter.drawText(QRectF(6, 0, kGutterWidth - 10, kAxisHeight - 4),
                   Qt::AlignLeft | Qt::AlignVCenter, tr("time in step"));
  painter.drawLine(QPointF(plot.left(), kAxisHeight - 1), QPointF(plot.right(), kAxisHeight - 1));
  for (double t = std::ceil(visible.start_s / step) * step; t <= visible.end_s + step * 1e-9;
       t += step) {
    const double x = xOfTime(t);
    painter.setPen(kGridColour);
    painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()));
    painter.setPen(palette().color(QPalette::Text));
    painter.drawLine(QPointF(x, kAxisHeight - 6), QPointF(x, kAxisHeight - 1));
    const QString label =
        QStringLiteral("%1 %2").arg(t * unit.per_second, 0, 'f', decimals).arg(unit.name);
    const int label_width = metrics.horizontalAdvance(label);
    // Keep the labels at the ends inside the widget.
    const double left =
        std::clamp(x - label_width / 2.0, plot.left() - 4, double(width()) - label_width - 2);
    painter.drawText(QRectF(left, 2, label_width + 1, kAxisHeight - 9), Qt::AlignCenter, label);
  }
}

void TimelineWidget::paintRow(QPainter& painter, const TimelineRow& row, const QRectF& plot) const {
  const TimelineLayout& timeline = layout();
  const TimeRange visible = timeline.visibleRange();
  const bool compute = row.stream == sim::Stream::compute;
  const QRectF band(plot.left(), row.top, plot.width(), row.height);

  // Row label in the gutter; a rank's lanes are indented under it.
  QFont label_font = font();
  if (compute) {
    label_font.setBold(true);
  } else {
    label_font.setPointSizeF(label_font.pointSizeF() * 0.8);
  }
  painter.setFont(label_font);
  painter.setPen(compute ? palette().color(QPalette::Text)
                         : palette().color(QPalette::PlaceholderText));
  painter.drawText(
      QRectF(compute ? 6 : 16, row.top, kGutterWidth - (compute ? 10 : 20), row.height),
      Qt::AlignLeft | Qt::AlignVCenter, lane_label(row.stream, row.pipeline_rank));
  painter.setFont(font());

  painter.save();
  painter.setClipRect(band);
  if (compute) {
    // The step's extent is hatched under the boxes: what stays visible is the bubble.
    const QRectF step(QPointF(xOfTime(0), row.top),
                      QPointF(xOfTime(timeline.stepTimeSeconds()), row.bottom()));
    painter.fillRect(step, bubbleColour());
    painter.fillRect(step, QBrush(bubbleHatchColour(), Qt::BDiagPattern));
  } else {
    painter.fillRect(band, kLaneColour);
  }

  // Box labels a size smaller than the row labels, so that short forward boxes still carry theirs.
  QFont box_font = font();
  box_font.setPointSizeF(box_font.pointSizeF() * 0.85);
  painter.setFont(box_font);
  const QFontMetrics metrics(box_font);
  double painted_to_x = -1e9;
  for (size_t i : row.events) {
    const sim::TimelineEvent& e = timeline.events()[i];
    if (e.start_s > visible.end_s) break;
    if (e.start_s + e.duration_s < visible.start_s) continue;
    const double x0 = xOfTime(e.start_s), x1 = xOfTime(e.start_s + e.duration_s);
    // Thousands of sub-pixel boxes (tp collectives of each layer) would paint the same pixel.
    if (x1 - x0 < 1.0 && x1 < painted_to_x + 1.0) continue;
    painted_to_x = std::max(x1, x0 + 1.0);
    const Kind kind = timeline_event_kind(e);
    const QColor fill = colourOf(kind);
    const QRectF box(x0, row.top + 1, std::max(1.0, x1 - x0), row.height - 2);
    painter.fillRect(box, fill);
    if (kind == Kind::backward) {
      const double recompute = timeline.recomputePerBackwardSeconds(e.pipeline_rank);
      if (recompute > 0)
        painter.fillRect(
            QRectF(box.left(), box.top(), box.width() * std::min(1.0, recompute / e.duration_s),
                   box.height()),
            kRecomputeColour);
    }
    if (box.width() >= 4) {
      painter.setPen(fill.darker(140));
      painter.drawRect(box.adjusted(0, 0, -0.5, -0.5));
    }
    if (!compute || kind == Kind::optimizer) continue;
    // The full name ("B3.1") where it fits, the microbatch (and chunk) alone where only that does.
    QString label = QString::fromStdString(e.name);
    if (metrics.horizontalAdvance(label) + 6 > box.width()) label = label.mid(1);
    if (metrics.horizontalAdvance(label) + 2 > box.width()) continue;
    painter.setPen(text_colour_on(fill));
    painter.drawText(box, Qt::AlignCenter, label);
  }
  painter.restore();
}

std::vector<TimelineWidget::LegendEntry> TimelineWidget::legendEntries() const {
  std::vector<LegendEntry> entries = {
      {tr("forward"), colourOf(Kind::forward)},
      {tr("backward"), colourOf(Kind::backward)},
  };
  if (layout().hasRecompute())
    entries.push_back({tr("recompute (start of backward)"), kRecomputeColour});
  entries.push_back({tr("optimizer step"), colourOf(Kind::optimizer)});
  if (layout().hasLane(sim::Stream::pp_comm))
    entries.push_back({tr("pipeline send/recv"), colourOf(Kind::pp_comm)});
  if (layout().hasLane(sim::Stream::dp_comm))
    entries.push_back({tr("data-parallel sync"), colourOf(Kind::dp_comm)});
  if (layout().hasLane(sim::Stream::tp_comm))
    entries.push_back({tr("tensor-parallel collectives"), colourOf(Kind::tp_comm)});
  entries.push_back({tr("idle (pipeline bubble)"), bubbleColour(), true});
  return entries;
}

// Lays the legend out left to right from the gutter, wrapping at `widget_width`; calls
// `place(entry, x, y_offset, entry_width)` for each entry and returns the rows used.
int TimelineWidget::layoutLegend(
    int widget_width, const std::function<void(const LegendEntry&, int, int, int)>& place) const {
  const QFontMetrics metrics(font());
  int x = kGutterWidth, y = 0, rows = 1;
  for (const LegendEntry& entry : legendEntries()) {
    const int entry_width = 14 + 6 + metrics.horizontalAdvance(entry.label) + 18;
    if (x + entry_width > widget_width - kRightMargin && x > kGutterWidth) {
      x = kGutterWidth;
      y += kLegendRowHeight;
      ++rows;
    }
    if (place) place(entry, x, y, entry_width);
    x += entry_width;
  }
  return rows;
}

int TimelineWidget::legendWidth() const {
  // Before the widget has its size (a child not yet laid out), plan for the width it hints at.
  return width() >= minimumSizeHint().width() ? width() : sizeHint().width();
}

void TimelineWidget::resizeEvent(QResizeEvent* event) {
  QWidget::resizeEvent(event);
  // A narrower widget wraps the legend onto more rows: ask the layout for the height it needs.
  const int rows = layout().rows().empty() ? 0 : layoutLegend(legendWidth(), {});
  if (rows != legend_rows_) {
    legend_rows_ = rows;
    updateGeometry();
  }
}

void TimelineWidget::paintLegend(QPainter& painter) const {
  const int top = layout().rows().back().bottom() + 10;
  layoutLegend(width(), [&](const LegendEntry& entry, int x, int y_offset, int entry_width) {
    const int y = top + y_offset;
    const QRectF swatch(x, y + 4, 14, 12);
    painter.fillRect(swatch, entry.colour);
    if (entry.hatched) painter.fillRect(swatch, QBrush(bubbleHatchColour(), Qt::BDiagPattern));
    painter.setPen(entry.colour.darker(140));
    painter.drawRect(swatch);
    painter.setPen(palette().color(QPalette::Text));
    painter.drawText(QRectF(x + 20, y, entry_width - 20, kLegendRowHeight - 2),
                     Qt::AlignLeft | Qt::AlignVCenter, entry.label);
  });
}

}  // namespace loom::gui
