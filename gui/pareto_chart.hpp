#pragma once
// Step time against peak memory for the plans of a search: every ranked plan as a point, the
// Pareto front drawn as a line through its plans, the device's capacity as a vertical line.
// Clicking a point selects its plan.

#include <QtCharts/QChartView>

#include <vector>

class QScatterSeries;

namespace loom::gui {

class PlanTableModel;

class ParetoChart : public QChartView {
  Q_OBJECT
 public:
  explicit ParetoChart(QWidget* parent = nullptr);

  // Plots the model's rows that have a prediction; `device_memory_bytes` marks the capacity.
  void setPlans(const PlanTableModel& model, int64_t device_memory_bytes);
  // Rings the point of a model row (-1: none).
  void highlightRow(int row);
  int pointCount() const { return int(points_.size()); }
  // The model row of the point nearest to a (memory GiB, step time) position; -1 if none.
  int rowNearest(const QPointF& value) const;

 signals:
  void rowClicked(int row);

 private:
  struct Point {
    QPointF value;  // x: peak memory in GiB, y: step time in the axis' unit
    int row = -1;
  };
  std::vector<Point> points_;
  QScatterSeries* highlight_ = nullptr;
  double time_scale_ = 1e3;  // seconds to the axis' unit
};

}  // namespace loom::gui
