#pragma once
// Runs: the runs recorded in the store, Loom's own and those imported from Megatron-LM and llm.c
// training logs; for one run its loss and step-time curves (with the predicted step time as a
// line) and the predicted-vs-measured table per category, the same numbers as `loom compare`.
// Refreshes while a run writes. Imports a log (`loom import`) and calibrates a profile from the
// selected runs (`loom calibrate`), calling the same back ends as the CLI. A run re-planned after a
// failure (`loom run --elastic`) lists its attempts, each compared with its own plan's prediction;
// a failed or cancelled run can be re-planned for the devices left and resumed from its newest
// checkpoint (`loom replan`, then Execute with --resume).

#include <QString>
#include <QWidget>

#include "core/plan.hpp"
#include "planner/log_import.hpp"
#include "planner/replan.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

class QChartView;
class QLabel;
class QLineSeries;
class QPushButton;
class QSortFilterProxyModel;
class QTableView;
class QTableWidget;
class QTimer;
class QValueAxis;

namespace loom::core {
class Store;
struct RunAttemptRow;
}  // namespace loom::core

namespace loom::gui {

class CalibrationDialog;
class ReplanDialog;
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

  // The selected run's attempts; the table of them shows only when there are several.
  int attemptCount() const;
  QTableWidget* attemptsTable() const { return attempts_table_; }
  // Compares this attempt of the selected run with its own plan's prediction (0: the last one, as
  // `loom compare` does); the attempt the comparison shows, 0 when none is shown.
  void selectAttempt(qint64 attempt);
  qint64 comparedAttempt() const;

  // Re-plan and resume. Where the run's checkpoints are, when its run_json records a checkpoint_dir
  // ("" otherwise: the action asks with the directory chooser).
  QString recordedCheckpointDir(qint64 run_id) const;
  // The devices the re-plan starts from: the failed (or cancelled) attempt's devices − 1, at least 1.
  int64_t devicesLeftOf(qint64 run_id) const;
  // Asks for a directory; a QFileDialog unless a test sets its own. Returns "" for none.
  using DirectoryChooser = std::function<QString(QWidget* parent, const QString& start)>;
  void setDirectoryChooser(DirectoryChooser chooser) { directory_chooser_ = std::move(chooser); }
  // plan::replan for the devices left; shows the one-line error in a message box and returns
  // nothing when it fails (no complete checkpoint, bad devices, nothing fits).
  std::optional<plan::ReplanResult> replanCheckpoint(int64_t devices, const QString& checkpoint_dir);
  // What was resumed: the plan, the file it was written to (next to the checkpoint directory, under
  // a name no file has yet) and the directory.
  struct ResumePlan {
    core::Plan plan;
    QString plan_path;
    QString checkpoint_dir;
  };
  // Writes the re-plan's best plan and emits resumeRequested; on failure shows the message and
  // returns nothing, writing nothing.
  std::optional<ResumePlan> resumeWith(const plan::ReplanResult& result, const QString& checkpoint_dir);
  // replanCheckpoint, then resumeWith: the dialog's work without the dialog.
  std::optional<ResumePlan> replanAndResume(int64_t devices, const QString& checkpoint_dir);
  // The dialog of "Re-plan and resume…" for the run (window-modal, not blocking; owned by this
  // view), once the checkpoint directory is known (recorded, or chosen); nullptr when none is chosen
  // or the run cannot be re-planned (shown in a message box). Accepted, it calls resumeWith.
  ReplanDialog* openReplanDialog(qint64 run_id);

 signals:
  // A re-planned run to continue: Execute runs `plan` with --checkpoint-dir DIR --resume.
  void resumeRequested(const loom::core::Plan& plan, const QString& plan_path, const QString& checkpoint_dir);

 public slots:
  void refresh();
  void selectRun(qint64 run_id);
  // The buttons' file dialogs and questions, then importLog / calibrateRuns.
  void importLogWithDialog();
  void calibrateSelectedRunsWithDialog();
  void replanSelectedRunWithDialog();

 private:
  void showSelectedRun();
  void clearRunDetails(const QString& why);
  void showError(const QString& message);
  // A message box that does not block (window-modal), remembered for lastMessage().
  void showMessage(const QString& title, const QString& message);
  void updateActions();
  void showAttempts(const std::vector<core::RunAttemptRow>& attempts, core::Store& store);

  QString store_path_;
  qint64 selected_run_ = 0;
  // The (run, status) the comparison table was computed for: a finished run's never changes.
  std::optional<std::pair<qint64, int>> compared_;
  QString last_message_;
  qint64 selected_attempt_ = 0;  // 0: the last
  qint64 compared_attempt_ = 0;
  int attempt_count_ = 0;
  DirectoryChooser directory_chooser_;

  RunsModel* runs_model_ = nullptr;
  QSortFilterProxyModel* sorted_runs_ = nullptr;
  ComparisonModel* comparison_model_ = nullptr;
  QTimer* refresh_timer_ = nullptr;
  QLabel* store_label_ = nullptr;
  QLabel* error_label_ = nullptr;
  QLabel* status_label_ = nullptr;
  QPushButton* import_button_ = nullptr;
  QPushButton* calibrate_button_ = nullptr;
  QPushButton* replan_button_ = nullptr;
  QTableWidget* attempts_table_ = nullptr;
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
