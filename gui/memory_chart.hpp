#pragma once
// Memory per pipeline stage as stacked bars (weights, gradients, optimizer, activations, other)
// against the device's capacity.

#include "simulator/memory_model.hpp"

#include <QtCharts/QChartView>

#include <vector>

class QBarSet;
class QLineSeries;
class QValueAxis;

namespace loom::gui {

class MemoryChart : public QChartView {
  Q_OBJECT
 public:
  explicit MemoryChart(QWidget* parent = nullptr);

  void setMemory(const std::vector<sim::StageMemory>& stages, int64_t device_memory_bytes);
  void clear();
  // Bars shown: one per pipeline stage.
  int stageBarCount() const;

  // What the chart draws, read back from its series (GiB): for checking that a plan that does
  // not fit has a bar rising above the capacity line, and that the axis shows both.
  double stageTotalGiB(int stage) const;
  double capacityLineGiB() const;
  double axisMaximumGiB() const;
  // What hovering stage `stage`'s bar shows: its total and each part; empty for no such stage.
  QString stageToolTip(int stage) const;

 private:
  std::vector<sim::StageMemory> stages_;
  std::vector<QBarSet*> sets_;  // weights, gradients, optimizer, activations, other
  QLineSeries* capacity_ = nullptr;
  QValueAxis* memory_axis_ = nullptr;
};

}  // namespace loom::gui
