#pragma once
// Runs: the runs recorded in the store; for one run its loss and step-time curves (with the
// predicted step time as a line) and the predicted-vs-measured table per category, the same
// numbers as `loom compare`. Refreshes while a run writes.

#include <QWidget>

#include <cstdint>

namespace loom::gui {

class RunsModel;

class RunsView : public QWidget {
  Q_OBJECT
 public:
  explicit RunsView(QWidget* parent = nullptr);

  void setStorePath(const QString& path);
  RunsModel* runsModel() const;

 public slots:
  void refresh();
  void selectRun(qint64 run_id);
};

}  // namespace loom::gui
