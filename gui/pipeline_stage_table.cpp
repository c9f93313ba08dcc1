#include "gui/pipeline_stage_table.hpp"

#include "gui/models/breakdown_model.hpp"
#include "gui/models/units.hpp"

#include <QBrush>
#include <QFont>
#include <QHeaderView>

#include <algorithm>
#include <vector>

namespace loom::gui {
namespace {

// "0–3", or "5" for one rank.
QString range_text(int64_t first, int64_t last) {
  return first == last ? QString::number(first) : QStringLiteral("%1–%2").arg(first).arg(last);
}

}  // namespace

PipelineStageTable::PipelineStageTable(QWidget* parent) : QTableWidget(parent) {
  setColumnCount(column_count);
  setHorizontalHeaderLabels({tr("Stage"), tr("Ranks"), tr("Device group"), tr("Layers"),
                             tr("Memory"), tr("Capacity"), tr("Busy")});
  horizontalHeaderItem(layers)->setToolTip(
      tr("Transformer layers of the stage; with virtual stages, its chunks' layers added"));
  horizontalHeaderItem(busy)->setToolTip(
      tr("Compute and exposed communication of the stage in one step, waiting not counted"));
  verticalHeader()->hide();
  verticalHeader()->setDefaultSectionSize(fontMetrics().height() + 8);
  horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  horizontalHeader()->setMinimumSectionSize(80);
  setEditTriggers(QAbstractItemView::NoEditTriggers);
  setSelectionBehavior(QAbstractItemView::SelectRows);
}

void PipelineStageTable::setStages(const core::Plan& plan, const sim::Prediction& prediction) {
  const int64_t pp = plan.parallel.pipeline_parallel;
  const int64_t stage_ranks = plan.parallel.tensor_parallel * plan.parallel.data_parallel;
  const std::vector<int64_t> chunks = plan.virtual_stage_layers();
  const std::vector<int64_t> groups = plan.pipeline_rank_groups();
  const std::vector<core::DeviceGroup> device_groups = plan.cluster.device_groups();
  const bool interleaved = plan.virtual_stages() > 1;
  clearContents();
  setRowCount(int(pp));
  // As tall as its rows, up to six: the timeline below needs the height more.
  setFixedHeight(horizontalHeader()->sizeHint().height() +
                 int(std::min<int64_t>(pp, 6)) * verticalHeader()->defaultSectionSize() + 2 * frameWidth() + 2);
  bottleneck_row_ = int(prediction.bottleneck_pipeline_stage);
  for (int64_t r = 0; r < pp; ++r) {
    QStringList chunk_texts;
    int64_t layer_count = 0;
    for (size_t i = size_t(r); i < chunks.size(); i += size_t(pp)) {
      chunk_texts << QString::number(chunks[i]);
      layer_count += chunks[i];
    }
    const int64_t group = groups[size_t(r)];
    const bool known = size_t(r) < prediction.stages.size() && size_t(r) < prediction.memory.size();
    const double memory_gib = known ? double(prediction.memory[size_t(r)].total_bytes()) / kGiB : 0;
    const double capacity_gib = known ? double(prediction.stages[size_t(r)].device_memory_bytes) / kGiB : 0;
    const bool fits = known && prediction.stages[size_t(r)].fits;
    const QString cells[column_count] = {
        QString::number(r),
        range_text(r * stage_ranks, (r + 1) * stage_ranks - 1),
        plan.cluster.mixed() ? tr("%1: %2").arg(group).arg(QString::fromStdString(device_groups[size_t(group)].profile))
                             : QString::fromStdString(device_groups[size_t(group)].profile),
        interleaved ? tr("%1 (%2)").arg(layer_count).arg(chunk_texts.join(QStringLiteral(" + ")))
                    : QString::number(layer_count),
        known ? tr("%1 GiB").arg(memory_gib, 0, 'f', 1) : QStringLiteral("–"),
        known ? tr("%1 GiB").arg(capacity_gib, 0, 'f', 0) : QStringLiteral("–"),
        known ? duration_text(prediction.stages[size_t(r)].busy_s) +
                    (r == bottleneck_row_ ? tr("  ◀ bottleneck") : QString())
              : QStringLiteral("–")};
    for (int c = 0; c < column_count; ++c) {
      auto* item = new QTableWidgetItem(cells[c]);
      if (c != device_group) item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
      if (c == memory && known && !fits) {
        item->setForeground(QBrush(QColor(0xc6, 0x28, 0x28)));
        item->setToolTip(tr("Does not fit in this group's device memory"));
      }
      if (r == bottleneck_row_) {
        QFont bold = item->font();
        bold.setBold(true);
        item->setFont(bold);
      }
      setItem(int(r), c, item);
    }
  }
}

void PipelineStageTable::clearStages() {
  clearContents();
  setRowCount(0);
  bottleneck_row_ = -1;
}

QString PipelineStageTable::cellText(int row, Column column) const {
  const QTableWidgetItem* cell = item(row, column);
  return cell ? cell->text() : QString();
}

}  // namespace loom::gui
