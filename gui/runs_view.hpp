#pragma once
// Runs: the runs recorded in the store; for one run its loss and step-time curves (with the
// predicted step time as a line) and the predicted-vs-measured table per category, the same
// numbers as `loom compare`. Refreshes while a run writes.

#include <QWidget>

#include <cstdint>
#include <optional>
#include <utility>

class QChartView;
class QLabel;
class QLineSeries;
class QSortFilterProxyModel;
class QTableView;
class QTimer;
class QValueAxis;

namespace loom::gui {

class ComparisonModel;
class RunsModel;

class RunsView : public QWidget {
  Q_OBJECT
 public:
  explicit RunsView(QWidget* parent = nullptr);

  void setStorePath(const QString& path);
  RunsModel* runsModel() const;
  ComparisonModel* comparisonModel() const { return comparison_model_; }
  // The run shown below the table, or 0.
  qint64 selectedRun() const { return selected_run_; }
  // Points drawn for the selected run: loss and measured step time per step.
  int curvePoints() const;
  // Why the comparison is not shown ("" when it is).
  QString comparisonMessage() const;

 public slots:
  void refresh();
  void selectRun(qint64 run_id);

 private:
  void showSelectedRun();
  void clearRunDetails(const QString& why);
  void showError(const QString& message);

  QString store_path_;
  qint64 selected_run_ = 0;
  // The (run, status) the comparison table was computed for: a finished run's never changes.
  std::optional<std::pair<qint64, int>> compared_;

  RunsModel* runs_model_ = nullptr;
  QSortFilterProxyModel* sorted_runs_ = nullptr;
  ComparisonModel* comparison_model_ = nullptr;
  QTimer* refresh_timer_ = nullptr;
  QLabel* store_label_ = nullptr;
  QLabel* error_label_ = nullptr;
  QTableView* runs_table_ = nullptr;
  QLabel* run_title_ = nullptr;
  QChartView* loss_chart_ = nullptr;
  QLineSeries* loss_series_ = nullptr;
  QValueAxis* loss_step_axis_ = nullptr;
  QValueAxis* loss_axis_ = nullptr;
  QChartView* time_chart_ = nullptr;
  QLineSeries* measured_time_series_ = nullptr;
  QLineSeries* predicted_time_series_ = nullptr;
  QValueAxis* time_step_axis_ = nullptr;
  QValueAxis* time_axis_ = nullptr;
  QLabel* comparison_title_ = nullptr;
  QTableView* comparison_table_ = nullptr;
};

}  // namespace loom::gui
