#include "gui/runs_view.hpp"

namespace loom::gui {

RunsView::RunsView(QWidget* parent) : QWidget(parent) {}
void RunsView::setStorePath(const QString&) {}
RunsModel* RunsView::runsModel() const { return nullptr; }
void RunsView::refresh() {}
void RunsView::selectRun(qint64) {}

}  // namespace loom::gui
