#pragma once
// The plan detail view's pipeline stages: for each stage its ranks, the device group (and profile)
// it runs on, its transformer layers, and its predicted memory against that group's device
// capacity; the stage that sets the pace (the simulator's bottleneck) is marked. Uneven splits
// and mixed clusters make these differ from stage to stage, which one number cannot show.

#include "core/plan.hpp"
#include "simulator/prediction.hpp"

#include <QTableWidget>

namespace loom::gui {

class PipelineStageTable : public QTableWidget {
  Q_OBJECT
 public:
  enum Column { stage, ranks, device_group, layers, memory, capacity, busy, column_count };

  explicit PipelineStageTable(QWidget* parent = nullptr);

  void setStages(const core::Plan& plan, const sim::Prediction& prediction);
  void clearStages();
  // The text of one cell, for tests.
  QString cellText(int row, Column column) const;
  // The row marked as the bottleneck; -1 when none is shown.
  int bottleneckRow() const { return bottleneck_row_; }

 private:
  int bottleneck_row_ = -1;
};

}  // namespace loom::gui
