#include "gui/models/reject_reasons_model.hpp"

#include <QLocale>

namespace loom::gui {

RejectReasonsModel::RejectReasonsModel(QObject* parent) : QAbstractTableModel(parent) {}

void RejectReasonsModel::setRejects(const plan::RejectCounts& rejects, int64_t device_memory_bytes) {
  beginResetModel();
  reasons_ = rejects.reasons(device_memory_bytes);
  endResetModel();
}

int64_t RejectReasonsModel::total() const {
  int64_t sum = 0;
  for (const auto& [reason, count] : reasons_) sum += count;
  return sum;
}

int RejectReasonsModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(reasons_.size()); }

int RejectReasonsModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : column_count; }

QVariant RejectReasonsModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount() || index.column() >= column_count) return {};
  const auto& [text, count] = reasons_[size_t(index.row())];
  if (role == Qt::TextAlignmentRole && index.column() == combinations)
    return QVariant::fromValue(Qt::Alignment(Qt::AlignRight | Qt::AlignVCenter));
  if (role == SortRole) return index.column() == reason ? QVariant(QString::fromStdString(text)) : QVariant(qlonglong(count));
  if (role != Qt::DisplayRole) return {};
  return index.column() == reason ? QString::fromStdString(text) : QLocale(QLocale::English).toString(qlonglong(count));
}

QVariant RejectReasonsModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return {};
  if (section == reason) return tr("reason");
  if (section == combinations) return tr("combinations");
  return {};
}

}  // namespace loom::gui
