#include "gui/models/runs_model.hpp"

#include "simulator/run_comparison.hpp"

#include <QBrush>
#include <QColor>
#include <QDateTime>
#include <QFileInfo>

#include <algorithm>
#include <cmath>
#include <limits>

namespace loom::gui {
namespace {

RunsModel::Row summarize(core::Store& store, const core::RunRow& run) {
  RunsModel::Row row;
  row.id = run.id;
  row.source = QString::fromStdString(run.source);
  row.plan = plan_label(store.plan(run.plan_id));
  row.status = run.status;
  row.reason = QString::fromStdString(run.reason.value_or(""));
  row.started_at = QString::fromStdString(run.started_at);
  const std::vector<core::StepRow> steps = store.steps(run.id);
  row.steps = int64_t(steps.size());
  row.last_loss = steps.empty() ? std::numeric_limits<double>::quiet_NaN() : steps.back().loss;
  row.steady_step_time_s = sim::steady_step_time_s(steps);
  return row;
}

QString local_time(const QString& iso_utc) {
  const QDateTime time = QDateTime::fromString(iso_utc, Qt::ISODateWithMs);
  return time.isValid() ? time.toLocalTime().toString(QStringLiteral("yyyy-MM-dd HH:mm:ss")) : iso_utc;
}

}  // namespace

QString plan_label(const core::PlanRow& plan) {
  return QStringLiteral("%1  tp %2 · pp %3 · dp %4")
      .arg(QString::fromStdString(plan.model_name))
      .arg(plan.tp.value_or(1))
      .arg(plan.pp.value_or(1))
      .arg(plan.dp.value_or(1));
}

QString source_label(const QString& source) {
  if (source == QLatin1String("loom")) return QStringLiteral("Loom");
  if (source == QLatin1String("megatron")) return QStringLiteral("Megatron-LM");
  if (source == QLatin1String("llmc")) return QStringLiteral("llm.c");
  return source;
}

RunsModel::RunsModel(QObject* parent) : QAbstractTableModel(parent) {}

void RunsModel::reload(const QString& store_path) {
  if (store_path != store_path_) {
    finished_.clear();
    store_path_ = store_path;
  }
  std::vector<Row> fresh;
  // Looking must not create a store where there is none.
  if (!store_path.isEmpty() && QFileInfo::exists(store_path)) {
    core::Store store = core::Store::open(store_path.toStdString());
    for (const core::RunRow& run : store.list_runs()) {
      if (const auto known = finished_.find(run.id); known != finished_.end()) {
        fresh.push_back(known->second);
        continue;
      }
      fresh.push_back(summarize(store, run));
      if (run.status != core::RunStatus::running) finished_[run.id] = fresh.back();
    }
  }
  const bool same_runs = fresh.size() == rows_.size() &&
                         std::equal(fresh.begin(), fresh.end(), rows_.begin(),
                                    [](const Row& a, const Row& b) { return a.id == b.id; });
  const bool appended = !same_runs && fresh.size() > rows_.size() &&
                        std::equal(rows_.begin(), rows_.end(), fresh.begin(),
                                   [](const Row& a, const Row& b) { return a.id == b.id; });
  if (same_runs || appended) {
    // Rows stay where they are: only values change, and new runs come last.
    for (size_t i = 0; i < rows_.size(); ++i)
      if (!(rows_[i] == fresh[i])) {
        rows_[i] = fresh[i];
        emit dataChanged(index(int(i), 0), index(int(i), column_count - 1));
      }
    if (appended) {
      beginInsertRows({}, int(rows_.size()), int(fresh.size()) - 1);
      rows_.insert(rows_.end(), fresh.begin() + std::ptrdiff_t(rows_.size()), fresh.end());
      endInsertRows();
    }
    return;
  }
  beginResetModel();
  rows_ = std::move(fresh);
  endResetModel();
}

void RunsModel::clear() {
  beginResetModel();
  rows_.clear();
  finished_.clear();
  store_path_.clear();
  endResetModel();
}

int RunsModel::rowOfRun(int64_t run_id) const {
  for (size_t i = 0; i < rows_.size(); ++i)
    if (rows_[i].id == run_id) return int(i);
  return -1;
}

bool RunsModel::anyRunning() const {
  return std::any_of(rows_.begin(), rows_.end(), [](const Row& r) { return r.status == core::RunStatus::running; });
}

int RunsModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(rows_.size()); }

int RunsModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : column_count; }

QVariant RunsModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount() || index.column() >= column_count) return {};
  const Row& r = rows_[size_t(index.row())];
  const bool has_steps = r.steps > 0;
  switch (role) {
    case RunIdRole:
      return qint64(r.id);
    case Qt::TextAlignmentRole: {
      const bool text = index.column() == source || index.column() == plan || index.column() == status || index.column() == started;
      return QVariant::fromValue(Qt::Alignment(text ? Qt::AlignLeft | Qt::AlignVCenter : Qt::AlignRight | Qt::AlignVCenter));
    }
    case Qt::ToolTipRole:
      if (index.column() == status && !r.reason.isEmpty()) return r.reason;
      if (index.column() == started) return r.started_at;
      if (index.column() == source && r.source != QLatin1String("loom"))
        return tr("Imported from a %1 training log: categories the log does not report are not measured")
            .arg(source_label(r.source));
      return {};
    case Qt::ForegroundRole:
      if (index.column() != status) return {};
      if (r.status == core::RunStatus::failed) return QBrush(QColor(0xb0, 0x20, 0x20));
      if (r.status == core::RunStatus::running) return QBrush(QColor(0x20, 0x60, 0xb0));
      if (r.status == core::RunStatus::cancelled) return QBrush(QColor(0x70, 0x70, 0x70));
      return {};
    case SortRole:
      switch (Column(index.column())) {
        case id: return qint64(r.id);
        case source: return r.source;
        case plan: return r.plan;
        case status: return QString::fromUtf8(core::to_string(r.status).data());
        case started: return r.started_at;  // ISO-8601 sorts chronologically
        case steps: return qint64(r.steps);
        // Runs without steps sort first.
        case last_loss: return has_steps && std::isfinite(r.last_loss) ? r.last_loss : -1.0;
        case step_time: return r.steady_step_time_s;
        case column_count: return {};
      }
      return {};
    case Qt::DisplayRole:
      switch (Column(index.column())) {
        case id: return qint64(r.id);
        case source: return source_label(r.source);
        case plan: return r.plan;
        case status: {
          const QString name = QString::fromUtf8(core::to_string(r.status).data());
          return r.reason.isEmpty() ? name : QStringLiteral("%1: %2").arg(name, r.reason);
        }
        case started: return local_time(r.started_at);
        case steps: return qint64(r.steps);
        case last_loss:
          if (!has_steps) return QStringLiteral("–");
          return std::isfinite(r.last_loss) ? QString::number(r.last_loss, 'f', 4) : tr("diverged");
        case step_time:
          return r.steady_step_time_s > 0 ? QStringLiteral("%1 ms").arg(r.steady_step_time_s * 1e3, 0, 'f', 1)
                                          : QStringLiteral("–");
        case column_count: return {};
      }
      return {};
    default:
      return {};
  }
}

QVariant RunsModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || section < 0 || section >= column_count) return {};
  if (role == Qt::ToolTipRole && section == step_time) return tr("Mean step time after the warm-up steps");
  if (role != Qt::DisplayRole) return {};
  static const char* const names[] = {"Run", "Source", "Plan", "Status", "Started", "Steps", "Last loss", "Step time"};
  return tr(names[section]);
}

}  // namespace loom::gui
