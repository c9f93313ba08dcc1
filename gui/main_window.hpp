#pragma once
// The desktop app's window: Plan → Results → Plan detail → Execute → Runs, one tab each, wired
// so that a search fills the results, a selected plan fills the detail and execute views, and
// a run shows up among the runs. The store's path and the window's geometry live in QSettings.

#include "core/plan.hpp"
#include "core/profile.hpp"

#include <QMainWindow>

class QTabWidget;

namespace loom::gui {

class ExecuteView;
class PlanDetailView;
class PlanView;
class ResultsView;
class RunsView;

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  enum class Tab { plan, results, detail, execute, runs };

  // `store_path` empty: the one used last (QSettings), else loom.db in the working directory.
  explicit MainWindow(const QString& store_path = {}, QWidget* parent = nullptr);
  ~MainWindow() override;

  // Shows a plan file in the detail and execute views; throws loom::Error when it is bad.
  void openPlanFile(const QString& path);
  void setStorePath(const QString& path);
  QString storePath() const { return store_path_; }
  void showTab(Tab tab);

  PlanView* planView() const { return plan_view_; }
  ResultsView* resultsView() const { return results_view_; }
  PlanDetailView* detailView() const { return detail_view_; }
  ExecuteView* executeView() const { return execute_view_; }
  RunsView* runsView() const { return runs_view_; }
  QTabWidget* tabs() const { return tabs_; }

 private:
  void selectPlan(const core::Plan& plan, const core::Profile& profile);
  // Puts `plan` in the Execute view, against the profile the run is best compared with.
  void offerForExecution(const core::Plan& plan);
  void buildMenus();

  QTabWidget* tabs_ = nullptr;
  PlanView* plan_view_ = nullptr;
  ResultsView* results_view_ = nullptr;
  PlanDetailView* detail_view_ = nullptr;
  ExecuteView* execute_view_ = nullptr;
  RunsView* runs_view_ = nullptr;
  QString store_path_;
};

}  // namespace loom::gui
