#pragma once
// The simulated pipeline timeline as a Gantt chart: one row per pipeline rank (and its
// communication lanes), forward and backward in distinct colours with microbatch numbers,
// bubbles left empty; zoomable.

#include "simulator/event_simulation.hpp"

#include <QWidget>

namespace loom::gui {

class TimelineWidget : public QWidget {
  Q_OBJECT
 public:
  explicit TimelineWidget(QWidget* parent = nullptr);

  void setTimeline(const sim::Timeline& timeline, int pipeline_ranks);
  // Pipeline ranks shown (one row each, plus communication lanes).
  int pipelineRowCount() const;
};

}  // namespace loom::gui
