#pragma once
// The Results table: the plans a search ranked (its best plans and its Pareto front, each once)
// and, when nothing fits, its nearest misses. Display text carries units; SortRole carries the
// raw number, so that sorting is numeric.

#include "planner/search.hpp"

#include <QAbstractTableModel>

#include <optional>
#include <vector>

namespace loom::gui {

class PlanTableModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column {
    rank, tensor_parallel, pipeline_parallel, data_parallel, virtual_stages, layers, micro_batch_size, schedule,
    recompute, sequence_parallel, distributed_optimizer, attention_backend, overlaps, step_time, tokens_per_s, mfu, peak_memory, fits, pareto,
    column_count
  };
  enum Role { SortRole = Qt::UserRole, PlanIndexRole };

  struct Row {
    core::Plan plan;
    std::optional<sim::Prediction> prediction;  // none for a near miss
    int64_t peak_memory_bytes = 0;
    bool fits = false;
    bool on_pareto_front = false;
    int rank = 0;  // 1 = best by the search's objective; 0 when not among the best
  };

  explicit PlanTableModel(QObject* parent = nullptr);

  void setResult(const plan::SearchResult& result);
  void clear();
  const Row& row(int index) const { return rows_.at(size_t(index)); }
  // The row of the search's best plan, or -1 when nothing fits.
  int bestRow() const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

 private:
  std::vector<Row> rows_;
};

}  // namespace loom::gui
