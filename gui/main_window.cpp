#include "gui/main_window.hpp"

#include "core/error.hpp"
#include "core/plan_json.hpp"
#include "gui/execute_view.hpp"
#include "gui/plan_detail_view.hpp"
#include "gui/plan_view.hpp"
#include "gui/results_view.hpp"
#include "gui/runs_view.hpp"

#include <QApplication>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenuBar>
#include <QMessageBox>
#include <QSettings>
#include <QStatusBar>
#include <QTabWidget>

namespace loom::gui {

MainWindow::MainWindow(const QString& store_path, QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(tr("Loom — plan, simulate and run parallel training"));
  tabs_ = new QTabWidget;
  plan_view_ = new PlanView;
  results_view_ = new ResultsView;
  detail_view_ = new PlanDetailView;
  execute_view_ = new ExecuteView;
  runs_view_ = new RunsView;
  tabs_->addTab(plan_view_, tr("Plan"));
  tabs_->addTab(results_view_, tr("Results"));
  tabs_->addTab(detail_view_, tr("Plan detail"));
  tabs_->addTab(execute_view_, tr("Execute"));
  tabs_->addTab(runs_view_, tr("Runs"));
  setCentralWidget(tabs_);
  buildMenus();

  connect(plan_view_, &PlanView::searchStarted, this, [this] { statusBar()->showMessage(tr("Searching…")); });
  connect(plan_view_, &PlanView::searchFinished, this,
          [this](std::shared_ptr<const plan::SearchResult> result, std::shared_ptr<const plan::SearchRequest> request) {
            statusBar()->showMessage(tr("Search finished: %1 plans ranked").arg(result->top.size()), 10000);
            results_view_->setResult(result, request);
            showTab(Tab::results);
          });
  connect(plan_view_, &PlanView::searchFailed, this, [this](const QString& message) {
    QMessageBox::warning(this, tr("Search failed"), message);
  });
  connect(results_view_, &ResultsView::planSelected, this, &MainWindow::selectPlan);
  connect(results_view_, &ResultsView::planActivated, this, [this](const core::Plan& plan, const core::Profile& profile) {
    selectPlan(plan, profile);
    showTab(Tab::detail);
  });
  connect(detail_view_, &PlanDetailView::executeRequested, this, [this] { showTab(Tab::execute); });
  // A plan whose overlaps were switched in the detail view is the one Execute runs.
  connect(detail_view_, &PlanDetailView::planEdited, this, &MainWindow::offerForExecution);
  connect(execute_view_, &ExecuteView::runStarted, this, [this](qint64 run_id) {
    statusBar()->showMessage(tr("Run %1 started").arg(run_id));
    runs_view_->refresh();
  });
  connect(runs_view_, &RunsView::resumeRequested, this,
          [this](const core::Plan& plan, const QString& plan_path, const QString& checkpoint_dir) {
            execute_view_->setResumePlan(plan, checkpoint_dir);
            showTab(Tab::execute);
            statusBar()->showMessage(tr("Re-planned run written to %1: Start resumes it").arg(plan_path));
          });
  connect(execute_view_, &ExecuteView::runFinished, this, [this](qint64 run_id, bool succeeded) {
    statusBar()->showMessage(succeeded ? tr("Run %1 completed").arg(run_id) : tr("Run %1 did not complete").arg(run_id), 10000);
    runs_view_->refresh();
    if (run_id > 0) runs_view_->selectRun(run_id);
  });

  QSettings settings;
  restoreGeometry(settings.value("window/geometry").toByteArray());
  QString path = store_path;
  if (path.isEmpty()) path = settings.value("store/path").toString();
  if (path.isEmpty()) path = QDir::current().absoluteFilePath("loom.db");
  setStorePath(path);
}

MainWindow::~MainWindow() {
  QSettings settings;
  settings.setValue("window/geometry", saveGeometry());
  settings.setValue("store/path", store_path_);
}

void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&Open plan…"), QKeySequence::Open, this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, tr("Open plan"), QString(), tr("Plans (*.json)"));
    if (path.isEmpty()) return;
    try {
      openPlanFile(path);
    } catch (const Error& e) {
      QMessageBox::warning(this, tr("Cannot open the plan"), QString::fromStdString(e.what()));
    }
  });
  file->addAction(tr("Choose &store…"), this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, tr("Store (SQLite)"), store_path_, tr("Loom stores (*.db)"),
                                                      nullptr, QFileDialog::DontConfirmOverwrite);
    if (!path.isEmpty()) setStorePath(path);
  });
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, qApp, &QApplication::closeAllWindows);
  QMenu* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&About Loom"), this, [this] {
    QMessageBox::about(this, tr("About Loom"),
                       tr("<b>Loom</b> plans, simulates and runs data, tensor and pipeline parallel training of "
                          "transformer language models.<br>Runs are started with <tt>loom run</tt> and recorded in "
                          "the store: %1")
                           .arg(store_path_.toHtmlEscaped()));
  });
}

void MainWindow::openPlanFile(const QString& path) {
  const core::Plan plan = core::read_plan_file(path.toStdString());
  plan.validate();
  selectPlan(plan, core::resolve_profile(plan.cluster.profile));
  statusBar()->showMessage(tr("Opened %1").arg(QFileInfo(path).fileName()), 10000);
  showTab(Tab::detail);
}

void MainWindow::setStorePath(const QString& path) {
  store_path_ = path;
  execute_view_->setStorePath(path);
  runs_view_->setStorePath(path);
  statusBar()->showMessage(tr("Store: %1").arg(path));
}

void MainWindow::showTab(Tab tab) { tabs_->setCurrentIndex(int(tab)); }

void MainWindow::selectPlan(const core::Plan& plan, const core::Profile& profile) {
  detail_view_->showPlan(plan, profile);
  offerForExecution(plan);
}

void MainWindow::offerForExecution(const core::Plan& plan) {
  execute_view_->setPlan(plan);
  // A run on this CPU is compared best with a profile measured on a CPU: the one chosen in the
  // Plan view when it is one, whatever profile the plan names (a plan file's is often a datasheet).
  try {
    const std::string chosen = plan_view_->inputs().profile;
    if (chosen != plan.cluster.profile && core::resolve_profile(chosen).device.host_cores > 0)
      execute_view_->setProfile(QString::fromStdString(chosen));
  } catch (const Error&) {
    // The Plan view shows what is wrong with its profile; the plan's own stays.
  }
}

}  // namespace loom::gui
