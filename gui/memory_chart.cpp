#include "gui/memory_chart.hpp"

namespace loom::gui {

MemoryChart::MemoryChart(QWidget* parent) : QWidget(parent) {}
void MemoryChart::setMemory(const std::vector<sim::StageMemory>&, int64_t) {}
int MemoryChart::stageBarCount() const { return 0; }

}  // namespace loom::gui
