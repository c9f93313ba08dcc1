#pragma once
// Why the search set combinations aside: each reason (a Megatron rule, a planner rule, or not
// fitting in memory) with how many combinations it rejected, largest first.

#include "planner/search_space.hpp"

#include <QAbstractTableModel>

#include <string>
#include <utility>
#include <vector>

namespace loom::gui {

class RejectReasonsModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { reason, combinations, column_count };
  enum Role { SortRole = Qt::UserRole };

  explicit RejectReasonsModel(QObject* parent = nullptr);

  void setRejects(const plan::RejectCounts& rejects, int64_t device_memory_bytes);
  int64_t total() const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

 private:
  std::vector<std::pair<std::string, int64_t>> reasons_;
};

}  // namespace loom::gui
