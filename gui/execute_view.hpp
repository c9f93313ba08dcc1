#pragma once
// Execute: runs the selected plan with `loom run` as a child process (steps, data, backend,
// launcher, the profile the run is compared against and the threads per rank; the exact command
// shown before it starts), with live step, loss and step time from its JSON lines, a progress
// bar, and a cancel that stops every rank and marks the run.

#include "core/plan.hpp"
#include "gui/models/run_process.hpp"

#include <QTemporaryDir>
#include <QWidget>

#include <cstdint>
#include <optional>

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTableWidget;
class QChartView;
class QLineSeries;
class QValueAxis;

namespace loom::gui {

class ExecuteView : public QWidget {
  Q_OBJECT
 public:
  explicit ExecuteView(QWidget* parent = nullptr);

  // Also makes the plan's own profile the one the run is compared against, and clears a resume.
  void setPlan(const core::Plan& plan);
  // A plan that continues a run from its newest checkpoint (a re-plan for the devices left):
  // `loom run PLAN --checkpoint-dir DIR --resume`.
  void setResumePlan(const core::Plan& plan, const QString& checkpoint_dir);
  // Where the run writes checkpoints ("": none), and whether it resumes from the newest one there.
  void setCheckpointDir(const QString& dir);
  QString checkpointDir() const;
  void setResume(bool resume);
  bool resume() const;
  // The profile (built-in name or file) the run is stored against for comparison; a measured CPU
  // profile also sets the threads per rank it was measured with, so that its prediction applies.
  void setProfile(const QString& name_or_file);
  QString profile() const;
  // 0: loom run decides (its launch rule: cores ÷ ranks per node).
  void setThreads(int threads);
  int threads() const;
  // The SQLite store the run is recorded in (shared with the Runs view).
  void setStorePath(const QString& path);
  void setSteps(int steps);
  // The command line that start() runs, as it will be shown and run.
  QString commandLine() const;
  bool isRunning() const;

  // For tests: `loom` elsewhere than next to this application.
  RunProcess& process() { return process_; }
  // The last step reported, and how the last run ended ("" while none has).
  qint64 lastStep() const { return last_step_; }
  QString statusText() const;

 public slots:
  void start();
  void cancel();

 signals:
  // The store's id of the run (known once `loom run` has recorded it).
  void runStarted(qint64 run_id);
  void stepReported(qint64 step, double loss, double step_time_s);
  void runFinished(qint64 run_id, bool succeeded);

 private:
  RunRequest request() const;
  QString planPath() const;
  bool writePlanFile();
  void updateCommand();
  void showProfile();
  void updateButtons();
  void showStep(qint64 step, double loss, double step_time_s, double tokens_per_s);
  void showFinished(qint64 run_id, bool succeeded, const QString& message);
  void setStatus(const QString& text, const QString& color);

  std::optional<core::Plan> plan_;
  QString store_path_;
  QTemporaryDir plan_dir_;  // the plan file `loom run` reads
  RunProcess process_;
  qint64 last_step_ = 0;
  qint64 run_id_ = 0;
  double last_loss_ = 0, last_step_time_s_ = 0;

  QLabel* plan_summary_ = nullptr;
  QSpinBox* steps_ = nullptr;
  QLineEdit* data_path_ = nullptr;
  QComboBox* backend_ = nullptr;
  QComboBox* launcher_ = nullptr;
  QComboBox* profile_ = nullptr;
  QLabel* profile_note_ = nullptr;
  QSpinBox* threads_ = nullptr;
  QLineEdit* checkpoint_dir_ = nullptr;
  QCheckBox* resume_ = nullptr;
  QLabel* store_label_ = nullptr;
  QPlainTextEdit* command_ = nullptr;
  QPushButton* start_button_ = nullptr;
  QPushButton* cancel_button_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* status_ = nullptr;
  QTableWidget* steps_table_ = nullptr;
  QPlainTextEdit* log_ = nullptr;
  QChartView* loss_chart_ = nullptr;
  QLineSeries* loss_series_ = nullptr;
  QValueAxis* step_axis_ = nullptr;
  QValueAxis* loss_axis_ = nullptr;
  double loss_min_ = 0, loss_max_ = 0;
};

}  // namespace loom::gui
