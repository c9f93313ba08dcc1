#include "gui/timeline_widget.hpp"

namespace loom::gui {

TimelineWidget::TimelineWidget(QWidget* parent) : QWidget(parent) {}
void TimelineWidget::setTimeline(const sim::Timeline&, int) {}
int TimelineWidget::pipelineRowCount() const { return 0; }

}  // namespace loom::gui
