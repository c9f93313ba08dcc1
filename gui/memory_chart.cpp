#include "gui/memory_chart.hpp"
#include "gui/models/units.hpp"

#include <QToolTip>
#include <QtCharts/QBarCategoryAxis>
#include <QtCharts/QBarSet>
#include <QtCharts/QLegend>
#include <QtCharts/QLineSeries>
#include <QtCharts/QStackedBarSeries>
#include <QtCharts/QValueAxis>

#include <algorithm>
#include <array>

namespace loom::gui {
namespace {


double gib(int64_t bytes) {
  return double(bytes) / kGiB;
}

struct Part {
  const char* name;    // short, for the legend
  const char* detail;  // for the tooltip
  QColor colour;
  int64_t sim::StageMemory::*bytes;
};

// Stacked bottom to top in this order: what every stage holds for the whole step (weights and
// their training state) under what depends on the schedule (activations) and the fixed reserve.
const std::array<Part, 5> kParts = {{
    {QT_TRANSLATE_NOOP("loom::gui::MemoryChart", "weights"), "", QColor(0x4e, 0x79, 0xa7),
     &sim::StageMemory::weights_bytes},
    {QT_TRANSLATE_NOOP("loom::gui::MemoryChart", "gradients"), "", QColor(0xf2, 0x8e, 0x2b),
     &sim::StageMemory::gradients_bytes},
    {QT_TRANSLATE_NOOP("loom::gui::MemoryChart", "optimizer state"),
     QT_TRANSLATE_NOOP("loom::gui::MemoryChart",
                       "Adam moments, and fp32 master weights in 16-bit training"),
     QColor(0x59, 0xa1, 0x4f), &sim::StageMemory::optimizer_bytes},
    {QT_TRANSLATE_NOOP("loom::gui::MemoryChart", "activations"),
     QT_TRANSLATE_NOOP("loom::gui::MemoryChart", "of the microbatches in flight"),
     QColor(0xb0, 0x7a, 0xa1), &sim::StageMemory::activations_bytes},
    {QT_TRANSLATE_NOOP("loom::gui::MemoryChart", "other"),
     QT_TRANSLATE_NOOP("loom::gui::MemoryChart", "CUDA context, workspaces, logits"),
     QColor(0xba, 0xb0, 0xac), &sim::StageMemory::other_bytes},
}};

QString gib_text(double value) {
  return QStringLiteral("%1 GiB").arg(value, 0, 'f', value >= 100 ? 0 : 1);
}

}  // namespace

MemoryChart::MemoryChart(QWidget* parent) : QChartView(parent) {
  setRenderHint(QPainter::Antialiasing);
  chart()->setTitle(tr("Memory per device by pipeline stage"));
  chart()->legend()->setAlignment(Qt::AlignBottom);
  chart()->setMargins(QMargins(4, 4, 4, 4));
  setMinimumSize(360, 260);
}

void MemoryChart::clear() {
  QChart* c = chart();
  c->removeAllSeries();
  for (QAbstractAxis* axis : c->axes()) {
    c->removeAxis(axis);
    delete axis;
  }
  sets_.clear();
  stages_.clear();
  capacity_ = nullptr;
  memory_axis_ = nullptr;
}

void MemoryChart::setMemory(const std::vector<sim::StageMemory>& stages,
                            int64_t device_memory_bytes) {
  clear();
  QChart* c = chart();
  const int stage_count = int(stages.size());

  auto* bars = new QStackedBarSeries;
  bars->setBarWidth(stage_count > 16 ? 0.85 : 0.6);
  double tallest = 0;
  for (const Part& part : kParts) {
    auto* set = new QBarSet(tr(part.name));
    set->setColor(part.colour);
    set->setBorderColor(part.colour.darker(120));
    for (const sim::StageMemory& stage : stages) set->append(gib(stage.*part.bytes));
    bars->append(set);
    sets_.push_back(set);
  }
  for (const sim::StageMemory& stage : stages)
    tallest = std::max(tallest, gib(stage.total_bytes()));

  const double capacity = gib(device_memory_bytes);
  capacity_ = new QLineSeries;
  capacity_->setName(tr("device capacity %1").arg(gib_text(capacity)));
  QPen dashed(QColor(0xc6, 0x28, 0x28));
  dashed.setStyle(Qt::DashLine);
  dashed.setWidth(2);
  capacity_->setPen(dashed);
  // Spans the whole category axis: categories sit at 0 … n−1, each half a unit wide.
  capacity_->append(-0.5, capacity);
  capacity_->append(stage_count - 0.5, capacity);

  c->addSeries(bars);
  c->addSeries(capacity_);

  QStringList categories;
  for (int s = 0; s < stage_count; ++s)
    categories << (stage_count <= 8 ? tr("stage %1").arg(s) : QString::number(s));
  auto* stage_axis = new QBarCategoryAxis;
  stage_axis->append(categories);
  stage_axis->setTitleText(tr("pipeline stage"));
  auto* line_axis = new QValueAxis;  // places the capacity line under the categories
  line_axis->setRange(-0.5, stage_count - 0.5);
  line_axis->setVisible(false);
  memory_axis_ = new QValueAxis;
  memory_axis_->setTitleText(tr("memory, GiB"));
  memory_axis_->setLabelFormat("%.0f");
  // Head room above whichever is higher, so a bar that does not fit visibly rises past the line.
  memory_axis_->setRange(0, std::max(tallest, capacity) * 1.12);
  memory_axis_->applyNiceNumbers();

  c->addAxis(stage_axis, Qt::AlignBottom);
  c->addAxis(line_axis, Qt::AlignBottom);
  c->addAxis(memory_axis_, Qt::AlignLeft);
  bars->attachAxis(stage_axis);
  bars->attachAxis(memory_axis_);
  capacity_->attachAxis(line_axis);
  capacity_->attachAxis(memory_axis_);

  const bool fits = tallest <= capacity;
  c->setTitle(fits ? tr("Memory per device by pipeline stage: peak %1 of %2")
                         .arg(gib_text(tallest), gib_text(capacity))
                   : tr("<span style='color:#c62828'>Memory per device by pipeline stage: peak %1, "
                        "over the %2 capacity</span>")
                         .arg(gib_text(tallest), gib_text(capacity)));

  stages_ = stages;
  connect(bars, &QStackedBarSeries::hovered, this, [this](bool on, int index, QBarSet*) {
    const QString text = on ? stageToolTip(index) : QString();
    if (text.isEmpty()) return QToolTip::hideText();
    QToolTip::showText(QCursor::pos(), text, this);
  });
}

QString MemoryChart::stageToolTip(int stage) const {
  if (stage < 0 || stage >= int(stages_.size())) return {};
  const sim::StageMemory& memory = stages_[size_t(stage)];
  QString text = tr("<b>Pipeline stage %1</b>: %2 per device")
                     .arg(stage)
                     .arg(gib_text(gib(memory.total_bytes())));
  for (const Part& part : kParts) {
    const QString detail = *part.detail ? tr(" (%1)").arg(tr(part.detail)) : QString();
    text += tr("<br>%1: %2%3").arg(tr(part.name), gib_text(gib(memory.*part.bytes)), detail);
  }
  return text;
}

int MemoryChart::stageBarCount() const {
  return sets_.empty() ? 0 : int(sets_.front()->count());
}

double MemoryChart::stageTotalGiB(int stage) const {
  double total = 0;
  for (const QBarSet* set : sets_)
    if (stage >= 0 && stage < set->count()) total += set->at(stage);
  return total;
}

double MemoryChart::capacityLineGiB() const {
  return capacity_ && capacity_->count() > 0 ? capacity_->at(0).y() : 0.0;
}

double MemoryChart::axisMaximumGiB() const {
  return memory_axis_ ? memory_axis_->max() : 0.0;
}

}  // namespace loom::gui
