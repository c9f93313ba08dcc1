#pragma once
// Memory per pipeline stage as stacked bars (weights, gradients, optimizer, activations, other)
// against the device's capacity.

#include "simulator/memory_model.hpp"

#include <QWidget>

#include <vector>

namespace loom::gui {

class MemoryChart : public QWidget {
  Q_OBJECT
 public:
  explicit MemoryChart(QWidget* parent = nullptr);

  void setMemory(const std::vector<sim::StageMemory>& stages, int64_t device_memory_bytes);
  // Bars shown: one per pipeline stage.
  int stageBarCount() const;
};

}  // namespace loom::gui
