#pragma once
// Plan detail: one plan's memory per pipeline stage against the device's capacity, where its
// step time goes (and what communication ran hidden beside it), and its pipeline timeline;
// exports the plan, its Megatron-LM arguments and its Perfetto trace. Its attention backend and
// communication overlaps can be switched here: the changed plan is simulated and shown.
//
// The simulation runs off the GUI thread (QtConcurrent): each showPlan() starts a job with a new
// id, and a finished job whose id is no longer the latest is dropped, so picking plans quickly
// never shows an older one last.

#include "core/plan.hpp"
#include "core/profile.hpp"
#include "simulator/prediction.hpp"

#include <QWidget>

#include <memory>
#include <optional>

class QLabel;
class QPushButton;
class QTableView;

namespace loom::gui {

class TimelineWidget;
class MemoryChart;
class BreakdownModel;
class PlanSwitchesEditor;
class PipelineStageTable;

class PlanDetailView : public QWidget {
  Q_OBJECT
 public:
  explicit PlanDetailView(QWidget* parent = nullptr);

  // Simulates `plan` on `profile` with its timeline recorded and shows the result.
  void showPlan(const core::Plan& plan, const core::Profile& profile);
  bool hasPlan() const;
  // Whether a simulation started by showPlan() has not reported yet.
  bool isSimulating() const { return simulating_; }

  // The exports behind the view's buttons; throw loom::Error when the file cannot be written.
  void exportPlanJson(const QString& path) const;
  void exportMegatronArguments(const QString& path) const;
  void exportTrace(const QString& path) const;

  TimelineWidget* timeline() const;
  MemoryChart* memoryChart() const;
  BreakdownModel* breakdownModel() const { return breakdown_model_; }
  PlanSwitchesEditor* switchesEditor() const { return switches_; }
  PipelineStageTable* stageTable() const { return stage_table_; }
  // The plan and prediction shown; null before the first simulation finished.
  const core::Plan* plan() const { return plan_ ? &*plan_ : nullptr; }
  const sim::Prediction* prediction() const { return prediction_.get(); }
  // The one-line summary above the charts (plain text, for tests and the status bar).
  QString summaryText() const;

 signals:
  // The user asked to run the shown plan (the main window switches to the Execute view).
  void executeRequested();
  // The latest showPlan()'s simulation finished and its result is on screen.
  void planShown();
  // The latest showPlan()'s plan could not be simulated; the message says why.
  void simulationFailed(const QString& message);
  // The user switched the shown plan's attention backend or overlaps; it is being simulated.
  void planEdited(const core::Plan& plan);

 private:
  void present(const core::Plan& plan, std::shared_ptr<const sim::Prediction> prediction);
  void showFailure(const QString& message);
  void setExportsEnabled(bool enabled);
  void exportWithDialog(const QString& title, const QString& suffix, const QString& filter,
                        void (PlanDetailView::*write)(const QString&) const);
  QString suggestedFileName(const QString& suffix) const;

  QLabel* header_ = nullptr;
  PipelineStageTable* stage_table_ = nullptr;
  QLabel* status_ = nullptr;
  QLabel* critical_rank_note_ = nullptr;
  QLabel* visible_range_ = nullptr;
  QPushButton* export_plan_ = nullptr;
  QPushButton* export_megatron_ = nullptr;
  QPushButton* export_trace_ = nullptr;
  QPushButton* execute_ = nullptr;
  QPushButton* zoom_out_ = nullptr;
  QPushButton* whole_step_ = nullptr;
  MemoryChart* memory_chart_ = nullptr;
  BreakdownModel* breakdown_model_ = nullptr;
  PlanSwitchesEditor* switches_ = nullptr;
  QTableView* breakdown_table_ = nullptr;
  TimelineWidget* timeline_ = nullptr;

  std::optional<core::Plan> plan_;
  std::shared_ptr<const sim::Prediction> prediction_;
  std::optional<core::Profile> profile_;  // of the latest showPlan(), to simulate an edited plan on
  quint64 simulation_job_ = 0;  // id of the latest showPlan(); older results are stale
  bool simulating_ = false;
  QString export_directory_;
};

}  // namespace loom::gui
