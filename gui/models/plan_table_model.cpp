#include "gui/models/plan_table_model.hpp"
#include "gui/models/plan_switches.hpp"
#include "gui/models/units.hpp"

#include "core/plan_json.hpp"

#include <QLocale>

#include <cmath>
#include <limits>
#include <map>

namespace loom::gui {
namespace {

QString on_off(bool on) { return on ? QStringLiteral("on") : QStringLiteral("off"); }

QString step_time_text(double seconds) {
  return seconds >= 1.0 ? QString::number(seconds, 'f', 3) + " s" : QString::number(seconds * 1e3, 'f', 2) + " ms";
}

}  // namespace

PlanTableModel::PlanTableModel(QObject* parent) : QAbstractTableModel(parent) {}

void PlanTableModel::setResult(const plan::SearchResult& result) {
  beginResetModel();
  rows_.clear();
  // A plan can be both among the best and on the front: one row, marked as both.
  std::map<std::string, size_t> row_of_plan;
  auto add = [&](const plan::RankedPlan& ranked, int rank, bool on_front) {
    const std::string key = core::to_json(ranked.plan).dump();
    if (auto it = row_of_plan.find(key); it != row_of_plan.end()) {
      Row& existing = rows_[it->second];
      existing.on_pareto_front = existing.on_pareto_front || on_front;
      if (rank > 0) existing.rank = rank;
      return;
    }
    row_of_plan[key] = rows_.size();
    rows_.push_back({ranked.plan, ranked.prediction, ranked.prediction.peak_memory_bytes, ranked.prediction.fits,
                     on_front, rank});
  };
  for (size_t i = 0; i < result.top.size(); ++i) add(result.top[i], int(i) + 1, false);
  for (const plan::RankedPlan& ranked : result.pareto) add(ranked, 0, true);
  if (result.top.empty())
    for (const plan::NearMiss& miss : result.nearest_misses)
      rows_.push_back({miss.plan, std::nullopt, miss.peak_memory_bytes, false, false, 0});
  endResetModel();
}

void PlanTableModel::clear() {
  beginResetModel();
  rows_.clear();
  endResetModel();
}

int PlanTableModel::bestRow() const {
  for (size_t i = 0; i < rows_.size(); ++i)
    if (rows_[i].rank == 1) return int(i);
  return -1;
}

int PlanTableModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(rows_.size()); }

int PlanTableModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : column_count; }

QVariant PlanTableModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount() || index.column() >= column_count) return {};
  const Row& r = rows_[size_t(index.row())];
  const core::ParallelPlan& p = r.plan.parallel;
  const sim::Prediction* prediction = r.prediction ? &*r.prediction : nullptr;
  if (role == PlanIndexRole) return index.row();
  if (role == Qt::TextAlignmentRole) {
    const bool text_column = index.column() == schedule || index.column() == recompute ||
                             index.column() == attention_backend || index.column() == overlaps;
    return QVariant::fromValue(Qt::Alignment(text_column ? Qt::AlignLeft | Qt::AlignVCenter : Qt::AlignRight | Qt::AlignVCenter));
  }
  // The short cell, in Megatron-LM's words.
  if (role == Qt::ToolTipRole && index.column() == overlaps) return overlaps_description(p);
  if (role == Qt::ToolTipRole && !prediction) return tr("Does not fit: %1 GiB needed").arg(double(r.peak_memory_bytes) / kGiB, 0, 'f', 1);
  if (role != Qt::DisplayRole && role != SortRole) return {};
  const bool sort = role == SortRole;
  // A near miss has no simulated time: it sorts after every plan that has one.
  const double no_time = std::numeric_limits<double>::infinity();
  switch (Column(index.column())) {
    case rank: return sort ? QVariant(r.rank > 0 ? r.rank : std::numeric_limits<int>::max()) : QVariant(r.rank > 0 ? QString::number(r.rank) : QString());
    case tensor_parallel: return qlonglong(p.tensor_parallel);
    case pipeline_parallel: return qlonglong(p.pipeline_parallel);
    case data_parallel: return qlonglong(p.data_parallel);
    case virtual_stages: return qlonglong(r.plan.virtual_stages());
    case layers: return layer_split_text(r.plan);
    case micro_batch_size: return qlonglong(p.micro_batch_size);
    case schedule: return QString::fromUtf8(core::to_string(p.schedule).data(), qsizetype(core::to_string(p.schedule).size()));
    case recompute: return QString::fromUtf8(core::to_string(p.recompute).data(), qsizetype(core::to_string(p.recompute).size()));
    case sequence_parallel: return sort ? QVariant(p.sequence_parallel) : QVariant(on_off(p.sequence_parallel));
    case distributed_optimizer: return sort ? QVariant(p.distributed_optimizer) : QVariant(on_off(p.distributed_optimizer));
    case attention_backend: return attention_backend_text(p.attention_backend);
    case overlaps: return overlaps_text(p);
    case step_time:
      if (sort) return prediction ? prediction->step_time_s : no_time;
      return prediction ? step_time_text(prediction->step_time_s) : QStringLiteral("—");
    case tokens_per_s:
      if (sort) return prediction ? prediction->tokens_per_s : 0.0;
      return prediction ? QLocale(QLocale::English).toString(qlonglong(std::llround(prediction->tokens_per_s))) : QStringLiteral("—");
    case mfu:
      if (sort) return prediction ? prediction->mfu : 0.0;
      return prediction ? QString::number(100.0 * prediction->mfu, 'f', 1) + " %" : QStringLiteral("—");
    case peak_memory:
      if (sort) return qlonglong(r.peak_memory_bytes);
      return QString::number(double(r.peak_memory_bytes) / kGiB, 'f', 1) + " GiB";
    case fits: return sort ? QVariant(r.fits) : QVariant(r.fits ? tr("yes") : tr("no"));
    case pareto: return sort ? QVariant(r.on_pareto_front) : QVariant(r.on_pareto_front ? tr("yes") : QString());
    case column_count: break;
  }
  return {};
}

QVariant PlanTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || section < 0 || section >= column_count) return {};
  if (role == Qt::ToolTipRole) {
    switch (Column(section)) {
      case rank: return tr("Rank by the search's objective (blank: on the Pareto front only)");
      case virtual_stages: return tr("Virtual pipeline stages per pipeline rank (interleaved schedule)");
      case layers:
        return tr("Transformer layers of each virtual stage in model order (pipeline-layer-split), or even");
      case micro_batch_size: return tr("Micro-batch size, sequences");
      case mfu: return tr("Model FLOPs utilisation: model FLOPs / (step time × devices × peak)");
      case attention_backend: return tr("Attention backend: flash (fused, tiled) or unfused (scores written out)");
      case overlaps:
        return tr("Communication hidden behind compute: grad = overlap-grad-reduce, param = overlap-param-gather, "
                  "tp = tp-comm-overlap");
      case peak_memory: return tr("Peak memory of the fullest pipeline stage");
      case pareto: return tr("On the Pareto front of step time against peak memory");
      default: return {};
    }
  }
  if (role != Qt::DisplayRole) return {};
  static const char* const kNames[column_count] = {
      "#",        "tp",        "pp",      "dp",        "vpp",      "layers",     "mbs",         "schedule", "recompute", "sp",
      "dist-opt", "attention", "overlap", "step time", "tokens/s", "MFU",         "peak memory", "fits",  "Pareto"};
  return QString::fromUtf8(kNames[section]);
}

}  // namespace loom::gui
