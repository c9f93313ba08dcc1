#pragma once
// Runs: the runs recorded in the store, Loom's own and those imported from Megatron-LM and llm.c
// training logs; for one run its loss and step-time curves (with the predicted step time as a
// line) and the predicted-vs-measured table per category, the same numbers as `loom compare`.
// Refreshes while a run writes. Imports a log (`loom import`) and calibrates a profile from the
// selected runs (`loom calibrate`), calling the same back ends as the CLI.

#include <QString>
#include <QWidget>

#include "planner/log_import.hpp"

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

class QChartView;
class QLabel;
class QLineSeries;
class QPushButton;
class QSortFilterProxyModel;
class QTableView;
class QTimer;
class QValueAxis;

namespace loom::gui {

class CalibrationDialog;
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
  // The title above the comparison table.
  QString comparisonTitle() const;
  // The runs selected in the table (several with Ctrl or Shift), by increasing id.
  std::vector<qint64> selectedRuns() const;
  void selectRuns(const std::vector<qint64>& run_ids);
  // The text of the last error shown in a message box ("" if none), and of the status line.
  QString lastMessage() const { return last_message_; }
  QString statusText() const;

  // What "Import log…" does once the files are chosen: detect_log, then import_megatron_log or
  // import_llmc_log into the store; the new run is selected. `profile` "" is the import's default.
  // On failure shows the one-line error in a message box and returns nothing (nothing is stored).
  std::optional<plan::LogImportResult> importLog(const QString& log_path, const QString& plan_path = {},
                                                 const QString& profile = {});
  // What "Calibrate a profile from the selected runs…" does once asked: sim::calibrate over the
  // runs from `base_profile` (a built-in name, a profile file, or a profile stored in the store),
  // on the GUI thread under a busy cursor (it takes well under a second to a few seconds). Opens
  // and returns the result dialog (owned by this view), or shows the error and returns nullptr.
  CalibrationDialog* calibrateRuns(const std::vector<qint64>& run_ids, const QString& base_profile, int holdout);
  // The profile the runs were predicted with, when they all share one; else "".
  QString storedProfileOf(const std::vector<qint64>& run_ids) const;

 public slots:
  void refresh();
  void selectRun(qint64 run_id);
  // The buttons' file dialogs and questions, then importLog / calibrateRuns.
  void importLogWithDialog();
  void calibrateSelectedRunsWithDialog();

 private:
  void showSelectedRun();
  void clearRunDetails(const QString& why);
  void showError(const QString& message);
  // A message box that does not block (window-modal), remembered for lastMessage().
  void showMessage(const QString& title, const QString& message);
  void updateActions();

  QString store_path_;
  qint64 selected_run_ = 0;
  // The (run, status) the comparison table was computed for: a finished run's never changes.
  std::optional<std::pair<qint64, int>> compared_;
  QString last_message_;

  RunsModel* runs_model_ = nullptr;
  QSortFilterProxyModel* sorted_runs_ = nullptr;
  ComparisonModel* comparison_model_ = nullptr;
  QTimer* refresh_timer_ = nullptr;
  QLabel* store_label_ = nullptr;
  QLabel* error_label_ = nullptr;
  QLabel* status_label_ = nullptr;
  QPushButton* import_button_ = nullptr;
  QPushButton* calibrate_button_ = nullptr;
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
