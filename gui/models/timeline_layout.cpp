#include "gui/models/timeline_layout.hpp"

#include <algorithm>
#include <array>
#include <cmath>

namespace loom::gui {
namespace {

// A rank's rows top to bottom: its compute, then the lanes of its communication.
constexpr std::array<sim::Stream, 4> kStreamOrder = {sim::Stream::compute, sim::Stream::pp_comm,
                                                     sim::Stream::dp_comm, sim::Stream::tp_comm};

}  // namespace

TimelineEventKind timeline_event_kind(const sim::TimelineEvent& event) {
  switch (event.stream) {
    case sim::Stream::pp_comm:
      return TimelineEventKind::pp_comm;
    case sim::Stream::dp_comm:
      return TimelineEventKind::dp_comm;
    case sim::Stream::tp_comm:
      return TimelineEventKind::tp_comm;
    case sim::Stream::compute:
      break;
  }
  // The simulator names compute actions "F<mb>[.<chunk>]" and "B<mb>[.<chunk>]".
  if (event.microbatch >= 0 && !event.name.empty()) {
    if (event.name.front() == 'F') return TimelineEventKind::forward;
    if (event.name.front() == 'B') return TimelineEventKind::backward;
  }
  return TimelineEventKind::optimizer;
}

void TimelineLayout::setTimeline(const sim::Timeline& timeline, int pipeline_ranks) {
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
    if (timeline_event_kind(event) == TimelineEventKind::backward)
      ++backward_count[size_t(event.pipeline_rank)];
  recompute_per_backward_s_.assign(size_t(pipeline_ranks_), 0.0);
  for (int r = 0; r < pipeline_ranks_ && r < int(timeline.ranks.size()); ++r)
    if (backward_count[size_t(r)] > 0)
      recompute_per_backward_s_[size_t(r)] =
          timeline.ranks[size_t(r)].recompute_s / backward_count[size_t(r)];
  layOutRows();
  zoom_stack_.clear();
  visible_ = fullRange();
}

void TimelineLayout::layOutRows() {
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
  std::vector<TimelineRow*> row_of(size_t(pipeline_ranks_) * kStreamOrder.size(), nullptr);
  for (TimelineRow& row : rows_)
    row_of[size_t(row.pipeline_rank) * kStreamOrder.size() + size_t(row.stream)] = &row;
  for (size_t i = 0; i < events_.size(); ++i)
    row_of[size_t(events_[i].pipeline_rank) * kStreamOrder.size() + size_t(events_[i].stream)]
        ->events.push_back(i);
  for (TimelineRow& row : rows_)
    std::stable_sort(row.events.begin(), row.events.end(), [this](size_t a, size_t b) {
      return events_[a].start_s < events_[b].start_s;
    });
}

bool TimelineLayout::hasLane(sim::Stream stream) const {
  return std::any_of(rows_.begin(), rows_.end(),
                     [stream](const TimelineRow& row) { return row.stream == stream; });
}

double TimelineLayout::recomputePerBackwardSeconds(int pipeline_rank) const {
  return recompute_per_backward_s_.at(size_t(pipeline_rank));
}

bool TimelineLayout::hasRecompute() const {
  return std::any_of(recompute_per_backward_s_.begin(), recompute_per_backward_s_.end(),
                     [](double s) { return s > 0; });
}

QRectF TimelineLayout::plotRect() const {
  // Without rows the plot still has some height, for the empty widget's message.
  const int rows_bottom = rows_.empty() ? kAxisHeight + 40 : rows_.back().bottom();
  return QRectF(kGutterWidth, kAxisHeight, std::max(1, widget_width_ - kGutterWidth - kRightMargin),
                rows_bottom - kAxisHeight + 2);
}

double TimelineLayout::xOfTime(double seconds) const {
  const QRectF plot = plotRect();
  return plot.left() + (seconds - visible_.start_s) / visible_.span_s() * plot.width();
}

double TimelineLayout::timeAtX(double x) const {
  const QRectF plot = plotRect();
  return visible_.start_s + (x - plot.left()) / plot.width() * visible_.span_s();
}

TimeRange TimelineLayout::fullRange() const {
  double end = step_time_s_;
  for (const sim::TimelineEvent& event : events_)
    end = std::max(end, event.start_s + event.duration_s);
  // A little room after the last box, so it does not touch the widget's edge.
  return end > 0 ? TimeRange{0.0, end * 1.01} : TimeRange{0.0, 1.0};
}

void TimelineLayout::zoomTo(double start_s, double end_s) {
  const TimeRange full = fullRange();
  if (end_s < start_s) std::swap(start_s, end_s);
  start_s = std::clamp(start_s, full.start_s, full.end_s);
  end_s = std::clamp(end_s, full.start_s, full.end_s);
  const double minimum = std::max(kMinimumSpan_s, full.span_s() * 1e-6);
  if (end_s - start_s < minimum) {
    const double centre = (start_s + end_s) / 2;
    start_s = std::max(full.start_s, centre - minimum / 2);
    end_s = std::min(full.end_s, start_s + minimum);
  }
  zoom_stack_.push_back(visible_);
  visible_ = {start_s, end_s};
}

bool TimelineLayout::zoomOut() {
  if (zoom_stack_.empty()) return false;
  visible_ = zoom_stack_.back();
  zoom_stack_.pop_back();
  return true;
}

void TimelineLayout::resetZoom() {
  zoom_stack_.clear();
  visible_ = fullRange();
}

void TimelineLayout::zoomInAround(double x, double notches) {
  const double anchor = timeAtX(std::max<double>(x, kGutterWidth));
  const double keep = std::pow(kWheelZoomFactor, notches);
  zoomTo(anchor - (anchor - visible_.start_s) * keep, anchor + (visible_.end_s - anchor) * keep);
}

void TimelineLayout::pan(double notches) {
  const TimeRange full = fullRange();
  const double shift = std::clamp(-notches * visible_.span_s() * kPanPerNotch,
                                  full.start_s - visible_.start_s, full.end_s - visible_.end_s);
  visible_ = {visible_.start_s + shift, visible_.end_s + shift};
}

const TimelineRow* TimelineLayout::rowAt(double y) const {
  for (const TimelineRow& row : rows_)
    if (y >= row.top && y < row.bottom()) return &row;
  return nullptr;
}

QRect TimelineLayout::rowRect(int pipeline_rank, sim::Stream stream) const {
  for (const TimelineRow& row : rows_)
    if (row.pipeline_rank == pipeline_rank && row.stream == stream)
      return plotRect().toAlignedRect().intersected(
          QRect(kGutterWidth, row.top, widget_width_, row.height));
  return {};
}

std::optional<size_t> TimelineLayout::eventAt(const QPointF& position) const {
  const TimelineRow* row = rowAt(position.y());
  if (!row || position.x() < kGutterWidth) return std::nullopt;
  const double t = timeAtX(position.x());
  // Sub-pixel boxes are drawn a pixel wide: accept the pixel around them too.
  const double slack = visible_.span_s() / std::max(1.0, plotRect().width());
  for (size_t i : row->events) {
    const sim::TimelineEvent& e = events_[i];
    if (t >= e.start_s - slack && t <= e.start_s + e.duration_s + slack) return i;
  }
  return std::nullopt;
}

std::optional<TimeRange> TimelineLayout::idleAt(const QPointF& position) const {
  const TimelineRow* row = rowAt(position.y());
  if (!row || row->stream != sim::Stream::compute || position.x() < kGutterWidth ||
      eventAt(position))
    return std::nullopt;
  const double t = timeAtX(position.x());
  if (t < 0 || t > step_time_s_) return std::nullopt;
  // The rank waited for a pipeline peer from the end of the box before to the start of the next.
  TimeRange idle{0, step_time_s_};
  for (size_t i : row->events) {
    const sim::TimelineEvent& e = events_[i];
    if (e.start_s + e.duration_s <= t)
      idle.start_s = std::max(idle.start_s, e.start_s + e.duration_s);
    if (e.start_s >= t) idle.end_s = std::min(idle.end_s, e.start_s);
  }
  return idle;
}

}  // namespace loom::gui
