#include "gui/pareto_chart.hpp"
#include "gui/models/units.hpp"

#include "gui/models/plan_table_model.hpp"

#include <QtCharts/QLegend>
#include <QtCharts/QLegendMarker>
#include <QtCharts/QLineSeries>
#include <QtCharts/QScatterSeries>
#include <QtCharts/QValueAxis>

#include <algorithm>
#include <cmath>
#include <limits>

namespace loom::gui {
namespace {
}

ParetoChart::ParetoChart(QWidget* parent) : QChartView(parent) {
  setRenderHint(QPainter::Antialiasing);
  chart()->setTitle(tr("Step time against peak memory"));
  chart()->legend()->setAlignment(Qt::AlignBottom);
  setMinimumSize(360, 280);
}

void ParetoChart::setPlans(const PlanTableModel& model, int64_t device_memory_bytes) {
  QChart* c = chart();
  c->removeAllSeries();
  for (QAbstractAxis* axis : c->axes()) {
    c->removeAxis(axis);
    delete axis;
  }
  points_.clear();
  highlight_ = nullptr;

  double slowest = 0;
  for (int row = 0; row < model.rowCount(); ++row)
    if (model.row(row).prediction) slowest = std::max(slowest, model.row(row).prediction->step_time_s);
  time_scale_ = slowest >= 1.0 ? 1.0 : 1e3;
  const QString time_unit = slowest >= 1.0 ? tr("s") : tr("ms");

  auto* ranked = new QScatterSeries;
  ranked->setName(tr("ranked"));
  ranked->setMarkerSize(8);
  ranked->setColor(QColor(0x9e, 0x9e, 0x9e));
  ranked->setBorderColor(QColor(0x75, 0x75, 0x75));
  auto* front = new QScatterSeries;
  front->setName(tr("Pareto front"));
  front->setMarkerSize(11);
  front->setColor(QColor(0x1e, 0x88, 0xe5));
  auto* front_line = new QLineSeries;
  front_line->setColor(QColor(0x1e, 0x88, 0xe5));
  std::vector<QPointF> front_points;
  double max_x = double(device_memory_bytes) / kGiB, max_y = 0;
  for (int row = 0; row < model.rowCount(); ++row) {
    const PlanTableModel::Row& r = model.row(row);
    if (!r.prediction) continue;
    const QPointF value(double(r.peak_memory_bytes) / kGiB, r.prediction->step_time_s * time_scale_);
    points_.push_back({value, row});
    (r.on_pareto_front ? front : ranked)->append(value);
    if (r.on_pareto_front) front_points.push_back(value);
    max_x = std::max(max_x, value.x());
    max_y = std::max(max_y, value.y());
  }
  std::sort(front_points.begin(), front_points.end(), [](const QPointF& a, const QPointF& b) { return a.x() < b.x(); });
  for (const QPointF& p : front_points) front_line->append(p);
  front_line->setName(QString());

  auto* capacity = new QLineSeries;
  capacity->setName(tr("capacity %1 GiB").arg(double(device_memory_bytes) / kGiB, 0, 'f', 0));
  QPen dashed(QColor(0xc6, 0x28, 0x28));
  dashed.setStyle(Qt::DashLine);
  dashed.setWidth(2);
  capacity->setPen(dashed);
  capacity->append(double(device_memory_bytes) / kGiB, 0);
  capacity->append(double(device_memory_bytes) / kGiB, max_y * 1.1 + 1e-9);

  highlight_ = new QScatterSeries;
  highlight_->setName(tr("selected"));
  highlight_->setMarkerSize(18);
  highlight_->setColor(Qt::transparent);
  highlight_->setBorderColor(QColor(0xff, 0x8f, 0x00));
  highlight_->setPen(QPen(QColor(0xff, 0x8f, 0x00), 3));

  for (QAbstractSeries* series : std::initializer_list<QAbstractSeries*>{capacity, front_line, ranked, front, highlight_})
    c->addSeries(series);
  auto* x = new QValueAxis;
  x->setTitleText(tr("peak memory per device, GiB"));
  x->setRange(0, max_x * 1.05 + 1e-9);
  x->setLabelFormat("%.0f");
  auto* y = new QValueAxis;
  y->setTitleText(tr("step time, %1").arg(time_unit));
  y->setRange(0, max_y * 1.1 + 1e-9);
  y->setLabelFormat(time_scale_ == 1.0 ? "%.1f" : "%.0f");
  c->addAxis(x, Qt::AlignBottom);
  c->addAxis(y, Qt::AlignLeft);
  for (QAbstractSeries* series : c->series()) {
    series->attachAxis(x);
    series->attachAxis(y);
  }
  // The unnamed line of the front needs no legend entry.
  for (QAbstractSeries* unnamed : std::initializer_list<QAbstractSeries*>{front_line, highlight_})
    for (QLegendMarker* marker : c->legend()->markers(unnamed)) marker->setVisible(false);
  x->applyNiceNumbers();
  y->applyNiceNumbers();
  for (QScatterSeries* clickable : {ranked, front})
    connect(clickable, &QScatterSeries::clicked, this, [this](const QPointF& value) {
      const int row = rowNearest(value);
      if (row >= 0) emit rowClicked(row);
    });
}

int ParetoChart::rowNearest(const QPointF& value) const {
  int best = -1;
  double best_distance = std::numeric_limits<double>::infinity();
  for (const Point& p : points_) {
    const double d = std::hypot(p.value.x() - value.x(), p.value.y() - value.y());
    if (d < best_distance) best_distance = d, best = p.row;
  }
  return best;
}

void ParetoChart::highlightRow(int row) {
  if (!highlight_) return;
  highlight_->clear();
  for (const Point& p : points_)
    if (p.row == row) highlight_->append(p.value);
}

}  // namespace loom::gui
