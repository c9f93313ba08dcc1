#include "gui/models/comparison_model.hpp"

#include <QBrush>
#include <QColor>

#include <cmath>
#include <functional>
#include <optional>

namespace loom::gui {
namespace {

QString time_text(double seconds) { return QStringLiteral("%1 ms").arg(seconds * 1e3, 0, 'f', 2); }

QString bytes_text(double bytes) {
  constexpr double kMiB = 1024.0 * 1024.0;
  return bytes >= 1024 * kMiB ? QStringLiteral("%1 GiB").arg(bytes / (1024 * kMiB), 0, 'f', 2)
                              : QStringLiteral("%1 MiB").arg(bytes / kMiB, 0, 'f', 1);
}

}  // namespace

ComparisonModel::ComparisonModel(QObject* parent) : QAbstractTableModel(parent) {}

void ComparisonModel::setComparison(sim::RunComparison comparison) {
  beginResetModel();
  comparison_ = std::move(comparison);
  endResetModel();
}

void ComparisonModel::clear() {
  beginResetModel();
  comparison_.reset();
  endResetModel();
}

int ComparisonModel::firstMemoryRow() const { return comparison_ ? int(comparison_->rows.size()) : 0; }

int ComparisonModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid() || !comparison_) return 0;
  return int(comparison_->rows.size() + comparison_->ranks.size());
}

int ComparisonModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : column_count; }

QVariant ComparisonModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount() || index.column() >= column_count) return {};
  const bool memory_row = index.row() >= firstMemoryRow();
  QString name;
  double predicted_value = 0;
  std::optional<double> measured_value, error_value;  // nothing: not measured
  std::function<QString(double)> show;
  if (!memory_row) {
    const sim::ComparisonRow& r = comparison_->rows[size_t(index.row())];
    name = QString::fromStdString(r.quantity);
    predicted_value = r.predicted;
    measured_value = r.measured;
    error_value = r.error_percent;
    show = r.unit == "s" ? time_text : [](double v) { return QStringLiteral("%1 tokens/s").arg(v, 0, 'f', 0); };
  } else {
    const sim::RankMemoryComparison& r = comparison_->ranks[size_t(index.row() - firstMemoryRow())];
    name = tr("peak memory, rank %1 (stage %2)").arg(r.rank).arg(r.pipeline_rank);
    predicted_value = r.predicted_peak_bytes;
    measured_value = r.measured_peak_bytes;
    error_value = r.error_percent;
    show = bytes_text;
  }
  switch (role) {
    case Qt::TextAlignmentRole:
      return QVariant::fromValue(
          Qt::Alignment(index.column() == quantity ? Qt::AlignLeft | Qt::AlignVCenter : Qt::AlignRight | Qt::AlignVCenter));
    case Qt::ToolTipRole:
      if (index.column() == quantity && memory_row)
        return tr("Tensors only: the prediction without its runtime reserve, against the executor's allocator "
                  "high-water mark");
      if (index.column() == error) return tr("(predicted − measured) / measured");
      return {};
    case Qt::ForegroundRole:
      // Far off: worth a look.
      if (index.column() == error && error_value && std::abs(*error_value) > 25.0) return QBrush(QColor(0xb0, 0x20, 0x20));
      return {};
    case SortRole:
      switch (Column(index.column())) {
        case quantity: return name;
        case predicted: return predicted_value;
        case measured: return measured_value ? QVariant(*measured_value) : QVariant();
        case error: return error_value ? QVariant(*error_value) : QVariant();
        case column_count: return {};
      }
      return {};
    case Qt::DisplayRole:
      switch (Column(index.column())) {
        case quantity: return name;
        case predicted: return show(predicted_value);
        case measured: return measured_value ? show(*measured_value) : tr("not measured");
        case error:
          if (!error_value) return QStringLiteral("-");
          return QStringLiteral("%1%2 %").arg(*error_value >= 0 ? "+" : "").arg(*error_value, 0, 'f', 1);
        case column_count: return {};
      }
      return {};
    default:
      return {};
  }
}

QVariant ComparisonModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || section < 0 || section >= column_count || role != Qt::DisplayRole) return {};
  static const char* const names[] = {"Quantity", "Predicted", "Measured", "Error"};
  return tr(names[section]);
}

}  // namespace loom::gui
