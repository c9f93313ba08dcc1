#pragma once
// Execute: runs the selected plan with `loom run` as a child process (steps, data, backend,
// launcher; the exact command shown before it starts), with live step, loss and step time
// from its JSON lines, a progress bar, and a cancel that stops every rank and marks the run.

#include "core/plan.hpp"

#include <QWidget>

#include <cstdint>

namespace loom::gui {

class ExecuteView : public QWidget {
  Q_OBJECT
 public:
  explicit ExecuteView(QWidget* parent = nullptr);

  void setPlan(const core::Plan& plan);
  // The SQLite store the run is recorded in (shared with the Runs view).
  void setStorePath(const QString& path);
  void setSteps(int steps);
  // The command line that start() runs, as it will be shown and run.
  QString commandLine() const;
  bool isRunning() const;

 public slots:
  void start();
  void cancel();

 signals:
  // The store's id of the run (known once `loom run` has recorded it).
  void runStarted(qint64 run_id);
  void stepReported(qint64 step, double loss, double step_time_s);
  void runFinished(qint64 run_id, bool succeeded);
};

}  // namespace loom::gui
