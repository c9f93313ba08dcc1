#include "gui/execute_view.hpp"

namespace loom::gui {

ExecuteView::ExecuteView(QWidget* parent) : QWidget(parent) {}
void ExecuteView::setPlan(const core::Plan&) {}
void ExecuteView::setStorePath(const QString&) {}
void ExecuteView::setSteps(int) {}
QString ExecuteView::commandLine() const { return {}; }
bool ExecuteView::isRunning() const { return false; }
void ExecuteView::start() {}
void ExecuteView::cancel() {}

}  // namespace loom::gui
