#pragma once
// What the pipeline timeline says about the point under the mouse: the event there (what it is,
// its rank, start and duration), or the pipeline bubble a compute row idles in.

#include "gui/models/timeline_layout.hpp"

#include <QPointF>
#include <QString>

namespace loom::gui {

// Rich text for a tooltip at widget position `position`; empty where nothing is drawn (the
// gutter, between rows, an idle communication lane, after the step).
QString timeline_tooltip(const TimelineLayout& layout, const QPointF& position);

}  // namespace loom::gui
