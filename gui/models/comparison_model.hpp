#pragma once
// A run beside its prediction, as `loom compare` prints it (sim::compare_run): time per step and
// per category, throughput, then peak memory per rank. Display text carries units; SortRole
// carries raw numbers (seconds, tokens/s, bytes, %).

// Qt before Loom: moc (Qt 6.4) fails to parse <concepts> (from core/store.hpp) when that is the
// first standard header it meets.
#include <QAbstractTableModel>

#include "simulator/run_comparison.hpp"

#include <optional>

namespace loom::gui {

class ComparisonModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { quantity, predicted, measured, error, column_count };
  enum Role { SortRole = Qt::UserRole };

  explicit ComparisonModel(QObject* parent = nullptr);

  void setComparison(sim::RunComparison comparison);
  void clear();
  const std::optional<sim::RunComparison>& comparison() const { return comparison_; }
  // Rows before this one are the step-time rows; from it on, one row per rank's peak memory.
  int firstMemoryRow() const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

 private:
  std::optional<sim::RunComparison> comparison_;
};

}  // namespace loom::gui
