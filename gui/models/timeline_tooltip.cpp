#include "gui/models/timeline_tooltip.hpp"

#include "gui/models/breakdown_model.hpp"

#include <QObject>

namespace loom::gui {
namespace {

QString idle_text(int pipeline_rank, const TimeRange& idle) {
  return QObject::tr("<b>idle</b>: pipeline bubble of PP rank %1<br>from %2 for %3")
      .arg(pipeline_rank)
      .arg(duration_text(idle.start_s), duration_text(idle.span_s()));
}

QString event_text(const TimelineLayout& layout, const sim::TimelineEvent& e) {
  const QString name = QString::fromStdString(e.name).toHtmlEscaped();
  // Only an interleaved schedule names its model chunks ("F2.1").
  const QString chunk =
      name.contains('.') ? QObject::tr(", model chunk %1").arg(e.chunk) : QString();
  QString what;
  switch (timeline_event_kind(e)) {
    case TimelineEventKind::forward:
      what = QObject::tr("<b>%1</b>: forward of microbatch %2%3")
                 .arg(name)
                 .arg(e.microbatch)
                 .arg(chunk);
      break;
    case TimelineEventKind::backward: {
      what = QObject::tr("<b>%1</b>: backward of microbatch %2%3")
                 .arg(name)
                 .arg(e.microbatch)
                 .arg(chunk);
      const double recompute = layout.recomputePerBackwardSeconds(e.pipeline_rank);
      if (recompute > 0)
        what += QObject::tr("<br>of which recompute %1").arg(duration_text(recompute));
      break;
    }
    case TimelineEventKind::optimizer:
      what = QObject::tr("<b>%1</b>").arg(name);
      break;
    case TimelineEventKind::pp_comm:
      what = QObject::tr("<b>%1</b>: pipeline transfer").arg(name);
      break;
    case TimelineEventKind::dp_comm:
      what = QObject::tr("<b>%1</b>: data-parallel communication").arg(name);
      break;
    case TimelineEventKind::tp_comm:
      what = QObject::tr("<b>tensor-parallel collectives</b> of the %1, microbatch %2%3")
                 .arg(name)
                 .arg(e.microbatch)
                 .arg(chunk);
      break;
  }
  return QObject::tr("%1<br>PP rank %2<br>start %3, duration %4")
      .arg(what)
      .arg(e.pipeline_rank)
      .arg(duration_text(e.start_s), duration_text(e.duration_s));
}

}  // namespace

QString timeline_tooltip(const TimelineLayout& layout, const QPointF& position) {
  if (const std::optional<size_t> event = layout.eventAt(position))
    return event_text(layout, layout.events()[*event]);
  if (const std::optional<TimeRange> idle = layout.idleAt(position))
    return idle_text(layout.rowAt(position.y())->pipeline_rank, *idle);
  return {};
}

}  // namespace loom::gui
