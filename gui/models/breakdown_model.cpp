#include "gui/models/breakdown_model.hpp"

#include <QColor>

namespace loom::gui {
namespace {

// What each category means, for tooltips: "exposed" is the part the step had to wait for.
QString category_explanation(BreakdownModel::Category which) {
  switch (which) {
    case BreakdownModel::forward:
      return BreakdownModel::tr("Forward passes of every microbatch (GEMMs and kernels)");
    case BreakdownModel::backward:
      return BreakdownModel::tr("Backward passes of every microbatch");
    case BreakdownModel::recompute:
      return BreakdownModel::tr(
          "Forward work repeated before each backward (activation recompute)");
    case BreakdownModel::tp_comm_exposed:
      return BreakdownModel::tr(
          "Tensor-parallel collectives the compute waited for (all of them without tp-comm-overlap)");
    case BreakdownModel::pp_comm_exposed:
      return BreakdownModel::tr("Pipeline sends and receives the critical rank waited for");
    case BreakdownModel::pipeline_bubble:
      return BreakdownModel::tr("Idle time of the critical rank while its pipeline peers worked");
    case BreakdownModel::dp_comm_exposed:
      return BreakdownModel::tr(
          "Data-parallel gradient reduction (and ZeRO-1 all-gather) not hidden behind compute");
    case BreakdownModel::optimizer:
      return BreakdownModel::tr("AdamW step and gradient norm");
    case BreakdownModel::tp_comm_hidden:
      return BreakdownModel::tr(
          "Tensor-parallel collectives run in chunks beside the GEMMs (tp-comm-overlap); they took "
          "no step time, so they are not part of it");
    case BreakdownModel::dp_comm_hidden:
      return BreakdownModel::tr(
          "Gradient buckets reduced beside the backward (overlap-grad-reduce) and parameters "
          "gathered beside the forward (overlap-param-gather); they took no step time, so they "
          "are not part of it");
    case BreakdownModel::category_count:
      break;
  }
  return {};
}

}  // namespace

QString duration_text(double seconds) {
  if (seconds >= 1.0) return QStringLiteral("%1 s").arg(seconds, 0, 'f', 3);
  if (seconds >= 1e-3 || seconds == 0) return QStringLiteral("%1 ms").arg(seconds * 1e3, 0, 'f', 2);
  return QStringLiteral("%1 µs").arg(seconds * 1e6, 0, 'f', 1);
}

BreakdownModel::BreakdownModel(QObject* parent) : QAbstractTableModel(parent) {}

QString BreakdownModel::categoryName(Category which) {
  switch (which) {
    case forward:
      return tr("forward");
    case backward:
      return tr("backward");
    case recompute:
      return tr("recompute");
    case tp_comm_exposed:
      return tr("TP comm exposed");
    case pp_comm_exposed:
      return tr("PP comm exposed");
    case pipeline_bubble:
      return tr("pipeline bubble");
    case dp_comm_exposed:
      return tr("DP comm exposed");
    case optimizer:
      return tr("optimizer");
    case tp_comm_hidden:
      return tr("TP comm hidden (beside GEMMs)");
    case dp_comm_hidden:
      return tr("DP comm hidden (beside backward/forward)");
    case category_count:
      break;
  }
  return {};
}

void BreakdownModel::setBreakdown(const sim::Breakdown& breakdown, double step_time_s) {
  beginResetModel();
  has_breakdown_ = true;
  step_time_s_ = step_time_s;
  seconds_ = {breakdown.forward_s,         breakdown.backward_s,        breakdown.recompute_s,
              breakdown.tp_comm_exposed_s, breakdown.pp_comm_exposed_s, breakdown.pp_bubble_s,
              breakdown.dp_comm_exposed_s, breakdown.optimizer_s,       breakdown.tp_comm_hidden_s,
              breakdown.dp_comm_hidden_s};
  endResetModel();
}

void BreakdownModel::clear() {
  beginResetModel();
  has_breakdown_ = false;
  step_time_s_ = 0;
  seconds_ = {};
  endResetModel();
}

int BreakdownModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() || !has_breakdown_ ? 0 : category_count;
}

int BreakdownModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : column_count;
}

QVariant BreakdownModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount() || index.column() >= column_count) return {};
  const auto which = Category(index.row());
  const double seconds = seconds_[size_t(which)];
  // Hidden time is no part of the step: it has no share of it (and no share bar).
  const bool in_step = isPartOfStepTime(which);
  const double fraction = in_step && step_time_s_ > 0 ? seconds / step_time_s_ : 0.0;
  switch (role) {
    case Qt::DisplayRole:
      switch (Column(index.column())) {
        case category:
          return categoryName(which);
        case time:
          return duration_text(seconds);
        case share:
          return in_step ? QStringLiteral("%1 %").arg(fraction * 100, 0, 'f', 1) : tr("not in step");
        case column_count:
          break;
      }
      break;
    case SortRole:
      switch (Column(index.column())) {
        case category:
          return int(which);
        case time:
          return seconds;
        case share:
          return fraction;
        case column_count:
          break;
      }
      break;
    case Qt::ToolTipRole:
      return category_explanation(which);
    case Qt::ForegroundRole:
      // Greyed, so that the eye sums only the parts of the step.
      if (!in_step) return QColor(0x75, 0x75, 0x75);
      break;
    case Qt::TextAlignmentRole:
      return QVariant::fromValue(Qt::Alignment(index.column() == category
                                                   ? Qt::AlignLeft | Qt::AlignVCenter
                                                   : Qt::AlignRight | Qt::AlignVCenter));
    default:
      break;
  }
  return {};
}

QVariant BreakdownModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole || section < 0 ||
      section >= column_count)
    return {};
  switch (Column(section)) {
    case category:
      return tr("Category");
    case time:
      return tr("Time per step");
    case share:
      return tr("Share of step");
    case column_count:
      break;
  }
  return {};
}

}  // namespace loom::gui
