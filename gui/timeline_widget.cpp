#include "gui/timeline_widget.hpp"

#include "gui/models/breakdown_model.hpp"

#include <QHelpEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QResizeEvent>
#include <QToolTip>
#include <QWheelEvent>

#include <algorithm>
#include <array>
#include <cmath>

namespace loom::gui {
namespace {

constexpr int kGutterWidth = 118;  // row labels
constexpr int kPreferredWidth = 900;
constexpr int kMinimumWidth = kGutterWidth + 240;
constexpr int kRightMargin = 16;
constexpr int kAxisHeight = 30;
constexpr int kComputeRowHeight = 30;
constexpr int kLaneHeight = 13;
constexpr int kRankGap = 9;
constexpr int kLegendRowHeight = 22;
constexpr int kDragThreshold = 4;         // px: a shorter drag is a click, not a zoom
constexpr double kWheelZoomFactor = 0.8;  // span kept per wheel notch
constexpr double kMinimumSpan_s = 1e-7;   // below this the simulator's numbers mean nothing

constexpr std::array<sim::Stream, 4> kStreamOrder = {sim::Stream::compute, sim::Stream::pp_comm,
                                                     sim::Stream::dp_comm, sim::Stream::tp_comm};

enum class Kind { forward, backward, optimizer, pp_comm, dp_comm, tp_comm };

Kind kind_of(const sim::TimelineEvent& event) {
  switch (event.stream) {
    case sim::Stream::pp_comm:
      return Kind::pp_comm;
    case sim::Stream::dp_comm:
      return Kind::dp_comm;
    case sim::Stream::tp_comm:
      return Kind::tp_comm;
    case sim::Stream::compute:
      break;
  }
  // The simulator names compute actions "F<mb>[.<chunk>]" and "B<mb>[.<chunk>]".
  if (event.microbatch >= 0 && !event.name.empty()) {
    if (event.name.front() == 'F') return Kind::forward;
    if (event.name.front() == 'B') return Kind::backward;
  }
  return Kind::optimizer;
}

QColor colour_of(Kind kind) {
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
const QColor kRecomputeColour(0xb0, 0x7a, 0xa1);
const QColor kBubbleColour(0xf4, 0xf4, 0xf4);
const QColor kBubbleHatch(0xd0, 0xd0, 0xd0);
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

TimelineWidget::TimelineWidget(QWidget* parent) : QWidget(parent) {
  setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
  setToolTip(QString());  // tooltips come from event(), per box
}

void TimelineWidget::setTimeline(const sim::Timeline& timeline, int pipeline_ranks) {
  pipeline_ranks_ = std::max(pipeline_ranks, 0);
  step_time_s_ = timeline.step_time_s;
  events_.clear();
  for (const sim::TimelineEvent& event : timeline.events)
    if (event.pipeline_rank >= 0 && event.pipeline_rank < pipeline_ranks_) events_.push_back(event);
  // The simulator records a backward pass as one box; recompute runs layer by layer inside it and
  // costs the same in every backward of a rank (its chunks hold equal layer counts), so its
  // share is drawn as the box's leading part.
  std::vector<int> backward_count(size_t(pipeline_ranks_), 0);
  for (const sim::TimelineEvent& event : events_)
    if (kind_of(event) == Kind::backward) ++backward_count[size_t(event.pipeline_rank)];
  recompute_per_backward_s_.assign(size_t(pipeline_ranks_), 0.0);
  for (int r = 0; r < pipeline_ranks_ && r < int(timeline.ranks.size()); ++r)
    if (backward_count[size_t(r)] > 0)
      recompute_per_backward_s_[size_t(r)] =
          timeline.ranks[size_t(r)].recompute_s / backward_count[size_t(r)];
  layoutRows();
  legend_rows_ = rows_.empty() ? 0 : layoutLegend(legendWidth(), {});
  zoom_stack_.clear();
  showRange(fullRange());
  updateGeometry();
}

void TimelineWidget::clear() {
  setTimeline(sim::Timeline{}, 0);
}

int TimelineWidget::pipelineRowCount() const {
  return pipeline_ranks_;
}

void TimelineWidget::layoutRows() {
  rows_.clear();
  std::array<bool, kStreamOrder.size()> stream_used{};
  for (const sim::TimelineEvent& event : events_) stream_used[size_t(event.stream)] = true;
  int top = kAxisHeight + 4;
  for (int rank = 0; rank < pipeline_ranks_; ++rank) {
    for (sim::Stream stream : kStreamOrder) {
      // A lane no rank uses (tp = 1, dp = 1) would only add empty rows.
      if (stream != sim::Stream::compute && !stream_used[size_t(stream)]) continue;
      const int height = stream == sim::Stream::compute ? kComputeRowHeight : kLaneHeight;
      rows_.push_back({rank, stream, top, height, {}});
      top += height + 1;
    }
    top += kRankGap;
  }
  // Deep pipelines have hundreds of rows and many thousands of events: find each event's row
  // by (rank, stream) instead of searching.
  std::vector<Row*> row_of(size_t(pipeline_ranks_) * kStreamOrder.size(), nullptr);
  for (Row& row : rows_)
    row_of[size_t(row.pipeline_rank) * kStreamOrder.size() + size_t(row.stream)] = &row;
  for (size_t i = 0; i < events_.size(); ++i)
    row_of[size_t(events_[i].pipeline_rank) * kStreamOrder.size() + size_t(events_[i].stream)]
        ->events.push_back(i);
  for (Row& row : rows_)
    std::stable_sort(row.events.begin(), row.events.end(), [this](size_t a, size_t b) {
      return events_[a].start_s < events_[b].start_s;
    });
}

int TimelineWidget::contentHeight() const {
  if (rows_.empty()) return kAxisHeight + 40;
  return rows_.back().top + rows_.back().height + 10 + legend_rows_ * kLegendRowHeight + 4;
}

QSize TimelineWidget::sizeHint() const {
  return {kPreferredWidth, contentHeight()};
}

QSize TimelineWidget::minimumSizeHint() const {
  return {kMinimumWidth, contentHeight()};
}

QRectF TimelineWidget::plotRect() const {
  const int rows_bottom = rows_.empty() ? kAxisHeight + 40 : rows_.back().top + rows_.back().height;
  return QRectF(kGutterWidth, kAxisHeight, std::max(1, width() - kGutterWidth - kRightMargin),
                rows_bottom - kAxisHeight + 2);
}

TimelineWidget::Range TimelineWidget::fullRange() const {
  double end = step_time_s_;
  for (const sim::TimelineEvent& event : events_)
    end = std::max(end, event.start_s + event.duration_s);
  // A little room after the last box, so it does not touch the widget's edge.
  return end > 0 ? Range{0.0, end * 1.01} : Range{0.0, 1.0};
}

double TimelineWidget::xOfTime(double seconds) const {
  const QRectF plot = plotRect();
  return plot.left() +
         (seconds - visible_.start_s) / (visible_.end_s - visible_.start_s) * plot.width();
}

double TimelineWidget::timeAtX(double x) const {
  const QRectF plot = plotRect();
  return visible_.start_s + (x - plot.left()) / plot.width() * (visible_.end_s - visible_.start_s);
}

void TimelineWidget::showRange(Range range) {
  visible_ = range;
  update();
  emit visibleRangeChanged(visible_.start_s, visible_.end_s);
}

void TimelineWidget::zoomTo(double start_s, double end_s) {
  const Range full = fullRange();
  if (end_s < start_s) std::swap(start_s, end_s);
  start_s = std::clamp(start_s, full.start_s, full.end_s);
  end_s = std::clamp(end_s, full.start_s, full.end_s);
  const double minimum = std::max(kMinimumSpan_s, (full.end_s - full.start_s) * 1e-6);
  if (end_s - start_s < minimum) {
    const double centre = (start_s + end_s) / 2;
    start_s = std::max(full.start_s, centre - minimum / 2);
    end_s = std::min(full.end_s, start_s + minimum);
  }
  zoom_stack_.push_back(visible_);
  showRange({start_s, end_s});
}

bool TimelineWidget::zoomOut() {
  if (zoom_stack_.empty()) return false;
  const Range previous = zoom_stack_.back();
  zoom_stack_.pop_back();
  showRange(previous);
  return true;
}

void TimelineWidget::resetZoom() {
  zoom_stack_.clear();
  showRange(fullRange());
}

const TimelineWidget::Row* TimelineWidget::rowAt(int y) const {
  for (const Row& row : rows_)
    if (y >= row.top && y < row.top + row.height) return &row;
  return nullptr;
}

QRect TimelineWidget::rowRect(int pipeline_rank, sim::Stream stream) const {
  for (const Row& row : rows_)
    if (row.pipeline_rank == pipeline_rank && row.stream == stream)
      return plotRect().toAlignedRect().intersected(
          QRect(kGutterWidth, row.top, width(), row.height));
  return {};
}

std::optional<size_t> TimelineWidget::eventAt(const QPoint& position) const {
  const Row* row = rowAt(position.y());
  if (!row || position.x() < kGutterWidth) return std::nullopt;
  const double t = timeAtX(position.x());
  // Sub-pixel boxes are drawn a pixel wide: accept the pixel around them too.
  const double slack = (visible_.end_s - visible_.start_s) / std::max(1.0, plotRect().width());
  for (size_t i : row->events) {
    const sim::TimelineEvent& e = events_[i];
    if (t >= e.start_s - slack && t <= e.start_s + e.duration_s + slack) return i;
  }
  return std::nullopt;
}

QString TimelineWidget::toolTipAt(const QPoint& position) const {
  const Row* row = rowAt(position.y());
  if (!row || position.x() < kGutterWidth) return {};
  const std::optional<size_t> found = eventAt(position);
  if (!found) {
    const double t = timeAtX(position.x());
    if (row->stream != sim::Stream::compute || t < 0 || t > step_time_s_) return {};
    // An idle stretch of the compute row: the rank waited for a pipeline peer.
    double idle_start = 0, idle_end = step_time_s_;
    for (size_t i : row->events) {
      const sim::TimelineEvent& e = events_[i];
      if (e.start_s + e.duration_s <= t)
        idle_start = std::max(idle_start, e.start_s + e.duration_s);
      if (e.start_s >= t) idle_end = std::min(idle_end, e.start_s);
    }
    return tr("<b>idle</b>: pipeline bubble of PP rank %1<br>from %2 for %3")
        .arg(row->pipeline_rank)
        .arg(duration_text(idle_start), duration_text(idle_end - idle_start));
  }
  const sim::TimelineEvent& e = events_[*found];
  const QString name = QString::fromStdString(e.name).toHtmlEscaped();
  const bool interleaved = name.contains('.');
  const QString chunk = interleaved ? tr(", model chunk %1").arg(e.chunk) : QString();
  QString what;
  switch (kind_of(e)) {
    case Kind::forward:
      what = tr("<b>%1</b>: forward of microbatch %2%3").arg(name).arg(e.microbatch).arg(chunk);
      break;
    case Kind::backward: {
      what = tr("<b>%1</b>: backward of microbatch %2%3").arg(name).arg(e.microbatch).arg(chunk);
      const double recompute = recompute_per_backward_s_[size_t(e.pipeline_rank)];
      if (recompute > 0) what += tr("<br>of which recompute %1").arg(duration_text(recompute));
      break;
    }
    case Kind::optimizer:
      what = tr("<b>%1</b>").arg(name);
      break;
    case Kind::pp_comm:
      what = tr("<b>%1</b>: pipeline transfer").arg(name);
      break;
    case Kind::dp_comm:
      what = tr("<b>%1</b>: data-parallel communication").arg(name);
      break;
    case Kind::tp_comm:
      what = tr("<b>tensor-parallel collectives</b> of the %1, microbatch %2%3")
                 .arg(name)
                 .arg(e.microbatch)
                 .arg(chunk);
      break;
  }
  return tr("%1<br>PP rank %2<br>start %3, duration %4")
      .arg(what)
      .arg(e.pipeline_rank)
      .arg(duration_text(e.start_s), duration_text(e.duration_s));
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
  if (rows_.empty()) return QWidget::wheelEvent(event);
  const QPoint angle = event->angleDelta();
  const bool pan =
      event->modifiers().testFlag(Qt::ShiftModifier) || (angle.y() == 0 && angle.x() != 0);
  const double notches = double(angle.y() != 0 ? angle.y() : angle.x()) / 120.0;
  if (notches == 0) return event->ignore();
  const double span = visible_.end_s - visible_.start_s;
  if (pan) {
    // Panning moves the range shown without adding to the zoom stack; wheel up moves earlier.
    const Range full = fullRange();
    const double shift = std::clamp(-notches * span * 0.1, full.start_s - visible_.start_s,
                                    full.end_s - visible_.end_s);
    showRange({visible_.start_s + shift, visible_.end_s + shift});
  } else if (notches > 0) {
    // The time under the cursor stays where it is.
    const double anchor = timeAtX(std::max<double>(event->position().x(), kGutterWidth));
    const double keep = std::pow(kWheelZoomFactor, notches);
    zoomTo(anchor - (anchor - visible_.start_s) * keep, anchor + (visible_.end_s - anchor) * keep);
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
  if (event->button() == Qt::LeftButton && x >= kGutterWidth && !rows_.empty()) {
    drag_origin_x_ = x;
    drag_current_x_ = x;
    return event->accept();
  }
  QWidget::mousePressEvent(event);
}

void TimelineWidget::mouseMoveEvent(QMouseEvent* event) {
  if (!drag_origin_x_) return QWidget::mouseMoveEvent(event);
  const QRectF plot = plotRect();
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
  if (rows_.empty()) {
    painter.setPen(palette().color(QPalette::PlaceholderText));
    painter.drawText(rect(), Qt::AlignCenter, tr("No timeline: pick a plan to simulate it"));
    return;
  }
  const QRectF plot = plotRect();
  paintAxis(painter, plot);
  for (const Row& row : rows_) paintRow(painter, row, plot);
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
  const double span = visible_.end_s - visible_.start_s;
  const TimeUnit unit = unit_for(span);
  const QFontMetrics metrics(font());
  // About one label per 110 px, so that labels such as "1234.5 ms" never touch.
  const double step = nice_step(span / std::max(1.0, plot.width() / 110.0));
  const int decimals = std::max(0, int(-std::floor(std::log10(step * unit.per_second) + 1e-9)));
  painter.setPen(palette().color(QPalette::Text));
  painter.drawText(QRectF(6, 0, kGutterWidth - 10, kAxisHeight - 4),
                   Qt::AlignLeft | Qt::AlignVCenter, tr("time in step"));
  painter.drawLine(QPointF(plot.left(), kAxisHeight - 1), QPointF(plot.right(), kAxisHeight - 1));
  for (double t = std::ceil(visible_.start_s / step) * step; t <= visible_.end_s + step * 1e-9;
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

void TimelineWidget::paintRow(QPainter& painter, const Row& row, const QRectF& plot) const {
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
                      QPointF(xOfTime(step_time_s_), row.top + row.height));
    painter.fillRect(step, kBubbleColour);
    painter.fillRect(step, QBrush(kBubbleHatch, Qt::BDiagPattern));
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
    const sim::TimelineEvent& e = events_[i];
    if (e.start_s > visible_.end_s) break;
    if (e.start_s + e.duration_s < visible_.start_s) continue;
    const double x0 = xOfTime(e.start_s), x1 = xOfTime(e.start_s + e.duration_s);
    // Thousands of sub-pixel boxes (tp collectives of each layer) would paint the same pixel.
    if (x1 - x0 < 1.0 && x1 < painted_to_x + 1.0) continue;
    painted_to_x = std::max(x1, x0 + 1.0);
    const Kind kind = kind_of(e);
    const QColor fill = colour_of(kind);
    const QRectF box(x0, row.top + 1, std::max(1.0, x1 - x0), row.height - 2);
    painter.fillRect(box, fill);
    if (kind == Kind::backward) {
      const double recompute = recompute_per_backward_s_[size_t(e.pipeline_rank)];
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
      {tr("forward"), colour_of(Kind::forward)},
      {tr("backward"), colour_of(Kind::backward)},
  };
  if (std::any_of(recompute_per_backward_s_.begin(), recompute_per_backward_s_.end(),
                  [](double s) { return s > 0; }))
    entries.push_back({tr("recompute (start of backward)"), kRecomputeColour});
  entries.push_back({tr("optimizer step"), colour_of(Kind::optimizer)});
  const std::array<std::pair<sim::Stream, Kind>, 3> lanes = {
      {{sim::Stream::pp_comm, Kind::pp_comm},
       {sim::Stream::dp_comm, Kind::dp_comm},
       {sim::Stream::tp_comm, Kind::tp_comm}}};
  for (const auto& [stream, kind] : lanes)
    if (std::any_of(rows_.begin(), rows_.end(),
                    [stream](const Row& r) { return r.stream == stream; }))
      entries.push_back({stream == sim::Stream::pp_comm   ? tr("pipeline send/recv")
                         : stream == sim::Stream::dp_comm ? tr("data-parallel sync")
                                                          : tr("tensor-parallel collectives"),
                         colour_of(kind)});
  entries.push_back({tr("idle (pipeline bubble)"), kBubbleColour, true});
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
  const int rows = rows_.empty() ? 0 : layoutLegend(legendWidth(), {});
  if (rows != legend_rows_) {
    legend_rows_ = rows;
    updateGeometry();
  }
}

void TimelineWidget::paintLegend(QPainter& painter) const {
  const int top = rows_.back().top + rows_.back().height + 10;
  layoutLegend(width(), [&](const LegendEntry& entry, int x, int y_offset, int entry_width) {
    const int y = top + y_offset;
    const QRectF swatch(x, y + 4, 14, 12);
    painter.fillRect(swatch, entry.colour);
    if (entry.hatched) painter.fillRect(swatch, QBrush(kBubbleHatch, Qt::BDiagPattern));
    painter.setPen(entry.colour.darker(140));
    painter.drawRect(swatch);
    painter.setPen(palette().color(QPalette::Text));
    painter.drawText(QRectF(x + 20, y, entry_width - 20, kLegendRowHeight - 2),
                     Qt::AlignLeft | Qt::AlignVCenter, entry.label);
  });
}

}  // namespace loom::gui
