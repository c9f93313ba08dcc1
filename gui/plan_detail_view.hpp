#pragma once
// Plan detail: one plan's memory per pipeline stage against the device's capacity, where its
// step time goes, and its pipeline timeline; exports the plan, its Megatron-LM arguments and
// its Perfetto trace.

#include "core/plan.hpp"
#include "core/profile.hpp"

#include <QWidget>

namespace loom::gui {

class TimelineWidget;
class MemoryChart;

class PlanDetailView : public QWidget {
  Q_OBJECT
 public:
  explicit PlanDetailView(QWidget* parent = nullptr);

  // Simulates `plan` on `profile` with its timeline recorded and shows the result.
  void showPlan(const core::Plan& plan, const core::Profile& profile);
  bool hasPlan() const;

  // The exports behind the view's buttons; throw loom::Error when the file cannot be written.
  void exportPlanJson(const QString& path) const;
  void exportMegatronArguments(const QString& path) const;
  void exportTrace(const QString& path) const;

  TimelineWidget* timeline() const;
  MemoryChart* memoryChart() const;

 signals:
  // The user asked to run the shown plan (the main window switches to the Execute view).
  void executeRequested();
};

}  // namespace loom::gui
