#include "gui/plan_detail_view.hpp"

namespace loom::gui {

PlanDetailView::PlanDetailView(QWidget* parent) : QWidget(parent) {}
void PlanDetailView::showPlan(const core::Plan&, const core::Profile&) {}
bool PlanDetailView::hasPlan() const { return false; }
void PlanDetailView::exportPlanJson(const QString&) const {}
void PlanDetailView::exportMegatronArguments(const QString&) const {}
void PlanDetailView::exportTrace(const QString&) const {}
TimelineWidget* PlanDetailView::timeline() const { return nullptr; }
MemoryChart* PlanDetailView::memoryChart() const { return nullptr; }

}  // namespace loom::gui
