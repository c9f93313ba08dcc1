#include "gui/runs_view.hpp"

#include "core/error.hpp"
#include "core/json_reader.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"
#include "core/store.hpp"
#include "gui/calibration_dialog.hpp"
#include "gui/import_log_dialog.hpp"
#include "gui/models/comparison_model.hpp"
#include "gui/models/runs_model.hpp"
#include "gui/replan_dialog.hpp"
#include "gui/step_axis.hpp"
#include "simulator/calibration.hpp"
#include "simulator/run_comparison.hpp"

#include <QApplication>
#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QMessageBox>
#include <QPushButton>
#include <QSignalBlocker>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QTableView>
#include <QTableWidget>
#include <QTimer>
#include <QVBoxLayout>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLegend>
#include <QtCharts/QLineSeries>
#include <QtCharts/QValueAxis>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

namespace loom::gui {
namespace {

constexpr int kRefreshWhileRunningMs = 1000;

QChartView* make_chart(const QString& title, QValueAxis*& x_axis, const QString& x_title, QValueAxis*& y_axis,
                       const QString& y_title, const QString& y_format) {
  auto* chart = new QChart;
  chart->setTitle(title);
  chart->legend()->setAlignment(Qt::AlignBottom);
  x_axis = new QValueAxis;
  x_axis->setTitleText(x_title);
  set_step_axis_range(x_axis, 0, 1);
  y_axis = new QValueAxis;
  y_axis->setTitleText(y_title);
  y_axis->setLabelFormat(y_format);
  chart->addAxis(x_axis, Qt::AlignBottom);
  chart->addAxis(y_axis, Qt::AlignLeft);
  auto* view = new QChartView(chart);
  view->setRenderHint(QPainter::Antialiasing);
  view->setMinimumHeight(240);
  return view;
}

void attach(QChart* chart, QLineSeries* series, QValueAxis* x, QValueAxis* y) {
  chart->addSeries(series);
  series->attachAxis(x);
  series->attachAxis(y);
}

// A range around [low, high] with some room, never empty.
std::pair<double, double> padded(double low, double high, bool from_zero) {
  if (from_zero) low = 0;
  const double margin = std::max(1e-3 * std::max(std::abs(high), 1.0), 0.08 * (high - low));
  return {from_zero ? 0.0 : low - margin, high + margin};
}

QTableView* make_table(QAbstractItemModel* model) {
  auto* table = new QTableView;
  table->setModel(model);
  table->setSelectionBehavior(QAbstractItemView::SelectRows);
  table->setSelectionMode(QAbstractItemView::SingleSelection);
  table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table->setAlternatingRowColors(true);
  table->verticalHeader()->hide();
  table->horizontalHeader()->setHighlightSections(false);
  return table;
}

// The base profile of a calibration and its file (empty unless it is one): a profile file, a
// built-in name, or a profile stored in the store under that name.
std::pair<core::Profile, std::filesystem::path> resolve_base_profile(const QString& spec, core::Store& store) {
  const std::string text = spec.toStdString();
  if (QFileInfo(spec).isFile()) return {core::resolve_profile(text), std::filesystem::path(text)};
  try {
    return {core::resolve_profile(text), {}};
  } catch (const InvalidInput&) {
    // The latest profile of that name the store keeps (a calibration saved earlier).
    const std::vector<core::ProfileRow> stored = store.list_profiles();
    for (auto row = stored.rbegin(); row != stored.rend(); ++row)
      if (row->name == text)
        return {core::profile_from_json(core::Json::parse(row->profile_json), "profile " + text + " in " + store.path()),
                {}};
    throw;
  }
}

QTableWidgetItem* attempt_item(const QString& text, bool number = false) {
  auto* item = new QTableWidgetItem(text);
  if (number) item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
  return item;
}

// A file next to the checkpoint directory that no file has yet: DIR-replan-3dev.json, then -2, -3, …
QString fresh_plan_path(const QString& checkpoint_dir, int64_t devices) {
  const QFileInfo dir(QDir::cleanPath(checkpoint_dir));
  const QString stem = dir.absolutePath() + "/" + dir.fileName() + QStringLiteral("-replan-%1dev").arg(devices);
  QString path = stem + ".json";
  for (int n = 2; QFileInfo::exists(path); ++n) path = stem + QStringLiteral("-%1.json").arg(n);
  return path;
}

}  // namespace

RunsView::RunsView(QWidget* parent) : QWidget(parent) {
  runs_model_ = new RunsModel(this);
  sorted_runs_ = new QSortFilterProxyModel(this);
  sorted_runs_->setSourceModel(runs_model_);
  sorted_runs_->setSortRole(RunsModel::SortRole);
  comparison_model_ = new ComparisonModel(this);
  refresh_timer_ = new QTimer(this);
  refresh_timer_->setInterval(kRefreshWhileRunningMs);
  connect(refresh_timer_, &QTimer::timeout, this, &RunsView::refresh);

  store_label_ = new QLabel;
  store_label_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  auto* refresh_button = new QPushButton(tr("Refresh"));
  connect(refresh_button, &QPushButton::clicked, this, &RunsView::refresh);
  import_button_ = new QPushButton(tr("Import log…"));
  import_button_->setToolTip(tr("Store a Megatron-LM or llm.c training log as a measured run (loom import)"));
  connect(import_button_, &QPushButton::clicked, this, &RunsView::importLogWithDialog);
  calibrate_button_ = new QPushButton(tr("Calibrate a profile from the selected runs…"));
  calibrate_button_->setToolTip(tr("Fit a profile's efficiency parameters to the completed runs selected in the "
                                   "table (Ctrl or Shift selects several; loom calibrate)"));
  connect(calibrate_button_, &QPushButton::clicked, this, &RunsView::calibrateSelectedRunsWithDialog);
  replan_button_ = new QPushButton(tr("Re-plan and resume…"));
  replan_button_->setObjectName(QStringLiteral("replan_and_resume"));
  replan_button_->setToolTip(tr("For a failed or cancelled run: plan again for the devices left and continue from "
                                "its newest checkpoint (loom replan, then loom run --resume)"));
  connect(replan_button_, &QPushButton::clicked, this, &RunsView::replanSelectedRunWithDialog);
  directory_chooser_ = [](QWidget* parent, const QString& start) {
    return QFileDialog::getExistingDirectory(parent, tr("The run's checkpoint directory (--checkpoint-dir)"), start);
  };
  auto* top = new QHBoxLayout;
  top->addWidget(store_label_, 1);
  top->addWidget(import_button_);
  top->addWidget(calibrate_button_);
  top->addWidget(replan_button_);
  top->addWidget(refresh_button);
  status_label_ = new QLabel;
  status_label_->setWordWrap(true);
  status_label_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  status_label_->hide();
  error_label_ = new QLabel;
  error_label_->setWordWrap(true);
  error_label_->setStyleSheet(QStringLiteral("color: #b02020; font-weight: bold;"));
  error_label_->hide();

  runs_table_ = make_table(sorted_runs_);
  runs_table_->setSelectionMode(QAbstractItemView::ExtendedSelection);  // several runs to calibrate
  runs_table_->setSortingEnabled(true);
  runs_table_->sortByColumn(RunsModel::id, Qt::DescendingOrder);  // newest first
  runs_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  runs_table_->horizontalHeader()->setSectionResizeMode(RunsModel::status, QHeaderView::Stretch);
  connect(runs_table_->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
          [this](const QModelIndex& current) {
            const qint64 run = current.isValid() ? current.data(RunsModel::RunIdRole).toLongLong() : 0;
            if (run == selected_run_) return;
            selected_run_ = run;
            selected_attempt_ = 0;
            compared_.reset();
            showSelectedRun();
          });
  connect(runs_table_->selectionModel(), &QItemSelectionModel::selectionChanged, this, &RunsView::updateActions);

  // A re-planned run's attempts: which one the comparison shows.
  attempts_table_ = new QTableWidget(0, 6);
  attempts_table_->setObjectName(QStringLiteral("attempts"));
  attempts_table_->setHorizontalHeaderLabels(
      {tr("Attempt"), tr("Plan"), tr("Devices"), tr("Steps"), tr("Status"), tr("Cause")});
  attempts_table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  attempts_table_->setSelectionMode(QAbstractItemView::SingleSelection);
  attempts_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  attempts_table_->verticalHeader()->hide();
  attempts_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  attempts_table_->horizontalHeader()->setStretchLastSection(true);
  attempts_table_->setToolTip(tr("Each attempt is compared with its own plan's prediction: select one "
                                 "(loom compare RUN --attempt N)"));
  attempts_table_->hide();
  connect(attempts_table_, &QTableWidget::currentCellChanged, this, [this](int row) {
    if (row < 0) return;
    const qint64 attempt = attempts_table_->item(row, 0)->data(Qt::UserRole).toLongLong();
    if (attempt != compared_attempt_) selectAttempt(attempt);
  });

  run_title_ = new QLabel(tr("Select a run to see its curves and how it compares with its prediction."));
  run_title_->setWordWrap(true);
  QFont title_font = run_title_->font();
  title_font.setBold(true);
  run_title_->setFont(title_font);

  loss_chart_ = make_chart(tr("Training loss"), loss_step_axis_, tr("step"), loss_axis_, tr("loss (nats/token)"),
                           QStringLiteral("%.2f"));
  loss_series_ = new QLineSeries;
  loss_series_->setName(tr("loss"));
  attach(loss_chart_->chart(), loss_series_, loss_step_axis_, loss_axis_);
  loss_chart_->chart()->legend()->hide();

  time_chart_ = make_chart(tr("Step time"), time_step_axis_, tr("step"), time_axis_, tr("step time (ms)"),
                           QStringLiteral("%.0f"));
  measured_time_series_ = new QLineSeries;
  measured_time_series_->setName(tr("measured"));
  predicted_time_series_ = new QLineSeries;
  predicted_time_series_->setName(tr("predicted"));
  QPen predicted_pen(QColor(0xd0, 0x60, 0x10));
  predicted_pen.setStyle(Qt::DashLine);
  predicted_pen.setWidthF(2.0);
  predicted_time_series_->setPen(predicted_pen);
  attach(time_chart_->chart(), measured_time_series_, time_step_axis_, time_axis_);
  attach(time_chart_->chart(), predicted_time_series_, time_step_axis_, time_axis_);

  comparison_title_ = new QLabel;
  comparison_title_->setWordWrap(true);
  comparison_table_ = make_table(comparison_model_);
  comparison_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  comparison_table_->horizontalHeader()->setSectionResizeMode(ComparisonModel::quantity, QHeaderView::Stretch);

  auto* charts = new QSplitter(Qt::Vertical);
  charts->addWidget(loss_chart_);
  charts->addWidget(time_chart_);
  charts->setSizes({1, 1});
  auto* comparison = new QWidget;
  auto* comparison_layout = new QVBoxLayout(comparison);
  comparison_layout->setContentsMargins(0, 0, 0, 0);
  comparison_layout->addWidget(comparison_title_);
  comparison_layout->addWidget(comparison_table_, 1);
  auto* details_split = new QSplitter(Qt::Horizontal);
  details_split->addWidget(charts);
  details_split->addWidget(comparison);
  details_split->setStretchFactor(0, 1);
  details_split->setStretchFactor(1, 0);
  // The charts take what the table (a fixed set of short rows) leaves.
  details_split->setSizes({1000, 560});
  auto* details = new QWidget;
  auto* details_layout = new QVBoxLayout(details);
  details_layout->setContentsMargins(0, 0, 0, 0);
  details_layout->addWidget(run_title_);
  details_layout->addWidget(attempts_table_);
  details_layout->addWidget(details_split, 1);

  auto* split = new QSplitter(Qt::Vertical);
  split->addWidget(runs_table_);
  split->addWidget(details);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 3);
  split->setSizes({200, 700});
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(top);
  layout->addWidget(error_label_);
  layout->addWidget(status_label_);
  layout->addWidget(split, 1);
  clearRunDetails(tr("Select a run to see its curves and how it compares with its prediction."));
  setStorePath({});
}

RunsModel* RunsView::runsModel() const { return runs_model_; }

int RunsView::curvePoints() const { return loss_series_->count() + measured_time_series_->count(); }

QString RunsView::comparisonMessage() const {
  return comparison_model_->comparison() ? QString() : comparison_title_->text();
}

QString RunsView::comparisonTitle() const { return comparison_title_->text(); }

QString RunsView::statusText() const { return status_label_->isHidden() ? QString() : status_label_->text(); }

std::vector<qint64> RunsView::selectedRuns() const {
  std::vector<qint64> ids;
  for (const QModelIndex& index : runs_table_->selectionModel()->selectedRows())
    ids.push_back(index.data(RunsModel::RunIdRole).toLongLong());
  // By id, whatever the table's order: the hold-out runs are picked by position in this list.
  std::sort(ids.begin(), ids.end());
  return ids;
}

void RunsView::selectRuns(const std::vector<qint64>& run_ids) {
  if (run_ids.empty()) return;
  selectRun(run_ids.front());
  QItemSelection selection;
  for (const qint64 id : run_ids) {
    const int row = runs_model_->rowOfRun(id);
    if (row < 0) continue;
    const QModelIndex proxy_index = sorted_runs_->mapFromSource(runs_model_->index(row, 0));
    selection.select(proxy_index, proxy_index);
  }
  runs_table_->selectionModel()->select(selection, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
}

void RunsView::setStorePath(const QString& path) {
  store_path_ = path;
  store_label_->setText(path.isEmpty() ? tr("No store") : tr("Store: %1").arg(path));
  selected_run_ = 0;
  compared_.reset();
  runs_model_->clear();
  clearRunDetails(tr("Select a run to see its curves and how it compares with its prediction."));
  status_label_->hide();
  refresh();
  updateActions();
}

void RunsView::refresh() {
  try {
    runs_model_->reload(store_path_);
    error_label_->hide();
  } catch (const Error& e) {
    showError(tr("Cannot read the store %1: %2").arg(store_path_, QString::fromStdString(e.what())));
  }
  updateActions();  // the selected run may have failed meanwhile
  if (runs_model_->anyRunning()) {
    if (!refresh_timer_->isActive()) refresh_timer_->start();
  } else {
    refresh_timer_->stop();
  }
  if (selected_run_ == 0) return;
  // A reset (another store, runs gone) loses the selection: find the run again.
  const int row = runs_model_->rowOfRun(selected_run_);
  if (row < 0) {
    selected_run_ = 0;
    clearRunDetails(tr("Select a run to see its curves and how it compares with its prediction."));
    return;
  }
  const QModelIndex proxy_index = sorted_runs_->mapFromSource(runs_model_->index(row, 0));
  // A run that moved (a reset) is selected again; a selection of several runs is left alone.
  if (runs_table_->selectionModel()->currentIndex().row() != proxy_index.row())
    runs_table_->selectionModel()->setCurrentIndex(
        proxy_index, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
  // A finished run shown once stays as it is.
  const RunsModel::Row& shown = runs_model_->row(row);
  if (compared_ && *compared_ == std::pair<qint64, int>(shown.id, int(shown.status))) return;
  showSelectedRun();
}

void RunsView::selectRun(qint64 run_id) {
  int row = runs_model_->rowOfRun(run_id);
  if (row < 0) {
    refresh();
    row = runs_model_->rowOfRun(run_id);
  }
  if (row < 0) return;
  const QModelIndex proxy_index = sorted_runs_->mapFromSource(runs_model_->index(row, 0));
  runs_table_->selectionModel()->setCurrentIndex(proxy_index,
                                                 QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
  runs_table_->scrollTo(proxy_index);
  if (selected_run_ != run_id) {
    selected_run_ = run_id;
    selected_attempt_ = 0;
    compared_.reset();
  }
  showSelectedRun();
}

void RunsView::showSelectedRun() {
  updateActions();
  if (selected_run_ == 0) {
    clearRunDetails(tr("Select a run to see its curves and how it compares with its prediction."));
    return;
  }
  try {
    // One connection per use, on this thread: the executor writes to the same file meanwhile.
    core::Store store = core::Store::open(store_path_.toStdString());
    const core::RunRow run = store.run(selected_run_);
    const core::PlanRow plan = store.plan(run.plan_id);
    const std::vector<core::StepRow> steps = store.steps(run.id);
    const std::vector<core::RunAttemptRow> attempts = store.attempts(run.id);
    // The attempt compared: the one chosen, else the last (each against its own plan's prediction).
    const core::RunAttemptRow* shown_attempt = attempts.empty() ? nullptr : &attempts.back();
    for (const core::RunAttemptRow& a : attempts)
      if (a.attempt == selected_attempt_) shown_attempt = &a;
    showAttempts(attempts, store);
    const int64_t predicted_plan = shown_attempt ? shown_attempt->plan_id : run.plan_id;
    const std::optional<int64_t> prediction_id = shown_attempt ? shown_attempt->prediction_id : run.prediction_id;
    std::optional<double> predicted_step_s;
    if (prediction_id)
      for (const core::PredictionRow& p : store.predictions_for_plan(predicted_plan))
        if (p.id == *prediction_id) predicted_step_s = p.step_time_s;
    // Several attempts: the predicted line spans the compared attempt's steps only.
    std::optional<std::pair<double, double>> predicted_span;
    if (attempts.size() > 1 && shown_attempt) {
      const std::vector<core::StepRow> own = sim::attempt_steps(steps, attempts, shown_attempt->attempt);
      if (!own.empty()) predicted_span = {double(own.front().step), double(own.back().step)};
    }

    const QString status = QString::fromUtf8(core::to_string(run.status).data());
    const QString source = QString::fromStdString(run.source);
    const QString measured_by =
        source == QLatin1String("loom") ? tr("%1 backend").arg(QString::fromStdString(run.backend))
                                        : tr("imported from a %1 log").arg(source_label(source));
    run_title_->setText(tr("Run %1 · %2 · %3%4 · %5 · profile %6")
                            .arg(run.id)
                            .arg(plan_label(plan), status,
                                 run.reason ? QStringLiteral(" (%1)").arg(QString::fromStdString(*run.reason)) : QString(),
                                 measured_by, QString::fromStdString(run.profile_name.value_or("?"))) +
                        (attempts.size() > 1 ? tr(" · %1 attempts (re-planned)").arg(attempts.size()) : QString()));

    QList<QPointF> losses, times;
    double loss_low = INFINITY, loss_high = -INFINITY, time_high = 0;
    for (const core::StepRow& s : steps) {
      if (std::isfinite(s.loss)) {
        losses.append({double(s.step), s.loss});
        loss_low = std::min(loss_low, s.loss);
        loss_high = std::max(loss_high, s.loss);
      }
      times.append({double(s.step), s.step_time_s * 1e3});
      time_high = std::max(time_high, s.step_time_s * 1e3);
    }
    loss_series_->replace(losses);
    measured_time_series_->replace(times);
    const double last_step = steps.empty() ? 1.0 : double(std::max<int64_t>(steps.back().step, 2));
    const double first_step = steps.empty() ? 0.0 : double(steps.front().step);
    set_step_axis_range(loss_step_axis_, first_step, last_step);
    set_step_axis_range(time_step_axis_, first_step, last_step);
    if (!losses.isEmpty()) {
      const auto [low, high] = padded(loss_low, loss_high, false);
      loss_axis_->setRange(low, high);
      loss_axis_->applyNiceNumbers();
    }
    if (predicted_step_s) {
      const double ms = *predicted_step_s * 1e3;
      const auto [from, to] = predicted_span.value_or(
          std::pair<double, double>{steps.empty() ? 0.0 : double(steps.front().step), last_step});
      predicted_time_series_->replace({{from, ms}, {to, ms}});
      predicted_time_series_->setName(
          predicted_span ? tr("predicted for attempt %1 (%2 ms)").arg(shown_attempt->attempt).arg(ms, 0, 'f', 1)
                         : tr("predicted (%1 ms)").arg(ms, 0, 'f', 1));
      time_high = std::max(time_high, ms);
    } else {
      predicted_time_series_->clear();
    }
    const auto [time_low, time_top] = padded(0, std::max(time_high, 1e-3), true);
    time_axis_->setRange(time_low, time_top);
    time_axis_->applyNiceNumbers();
    time_chart_->chart()->setTitle(steps.size() > 2 ? tr("Step time (the first %1 steps are warm-up)")
                                                          .arg(sim::warmup_steps_of(steps))
                                                    : tr("Step time"));

    const std::pair<qint64, int> key{run.id, int(run.status)};
    if (run.status == core::RunStatus::running) {
      comparison_model_->clear();
      comparison_title_->setText(tr("Predicted vs measured: once the run has finished (it needs every rank's "
                                    "statistics)."));
      compared_.reset();
      compared_attempt_ = 0;
    } else if (!compared_ || *compared_ != key) {
      compared_ = key;
      compared_attempt_ = 0;
      try {
        const std::optional<int64_t> attempt =
            selected_attempt_ > 0 ? std::optional<int64_t>(selected_attempt_) : std::nullopt;
        const sim::RunComparison c = sim::compare_run(store, run.id, "", attempt);
        compared_attempt_ = c.attempt;
        const QString command = c.attempts > 1 ? QStringLiteral("loom compare %1 --attempt %2").arg(c.run_id).arg(c.attempt)
                                               : QStringLiteral("loom compare %1").arg(c.run_id);
        const QString which =
            c.attempts > 1
                ? tr("Attempt %1 of %2 (%3%4) against its own plan's prediction. ")
                      .arg(c.attempt)
                      .arg(c.attempts)
                      .arg(QString::fromUtf8(core::to_string(c.status).data()),
                           c.cause ? QStringLiteral(": ") + QString::fromStdString(*c.cause).toHtmlEscaped() : QString())
                : QString();
        comparison_title_->setText(
            which +
            tr("Predicted vs measured per step (the same as <tt>%1</tt>): profile %2, %3 measured "
               "steps after %4 warm-up; categories of pipeline stage %5. Peak memory: tensors only, without the "
               "prediction's %6 MiB runtime reserve.")
                .arg(command)
                .arg(QString::fromStdString(c.profile_name).toHtmlEscaped())
                .arg(c.measured_steps)
                .arg(c.warmup_steps)
                .arg(c.compared_pipeline_rank)
                .arg(c.runtime_reserve_bytes / (1024.0 * 1024.0), 0, 'f', 0) +
            (c.source == "loom" ? QString()
             : c.has_rank_statistics
                 ? tr(" Imported from a %1 log: what it does not report is not measured.")
                       .arg(source_label(QString::fromStdString(c.source)))
                 : tr(" The %1 log reports no per-rank time or memory: only its steps are compared.")
                       .arg(source_label(QString::fromStdString(c.source)))) +
            (c.attempts > 1 && !c.has_rank_statistics && c.attempt < c.attempts
                 ? tr(" Per-rank time and memory are the last attempt's: only this attempt's steps are compared.")
                 : QString()));
        comparison_model_->setComparison(c);
      } catch (const Error& e) {
        comparison_model_->clear();
        comparison_title_->setText(tr("No comparison: %1").arg(QString::fromStdString(e.what()).toHtmlEscaped()));
      }
    }
  } catch (const Error& e) {
    clearRunDetails(tr("Cannot read run %1: %2").arg(selected_run_).arg(QString::fromStdString(e.what())));
  }
}

void RunsView::showAttempts(const std::vector<core::RunAttemptRow>& attempts, core::Store& store) {
  attempt_count_ = int(attempts.size());
  const qint64 shown = selected_attempt_ > 0 ? selected_attempt_ : (attempts.empty() ? 0 : attempts.back().attempt);
  QSignalBlocker blocker(attempts_table_);
  attempts_table_->setRowCount(0);
  // A run that never re-planned looks as it always has.
  attempts_table_->setVisible(attempts.size() > 1);
  if (attempts.size() <= 1) return;
  attempts_table_->setRowCount(int(attempts.size()));
  int shown_row = -1;
  for (size_t i = 0; i < attempts.size(); ++i) {
    const core::RunAttemptRow& a = attempts[i];
    const int row = int(i);
    QString plan_text;
    try {
      const core::PlanRow plan = store.plan(a.plan_id);
      plan_text = QStringLiteral("tp %1 · pp %2 · dp %3")
                      .arg(plan.tp.value_or(1))
                      .arg(plan.pp.value_or(1))
                      .arg(plan.dp.value_or(1));
    } catch (const Error&) {
      plan_text = tr("plan %1").arg(a.plan_id);
    }
    auto* number = attempt_item(QString::number(a.attempt), true);
    number->setData(Qt::UserRole, qint64(a.attempt));
    attempts_table_->setItem(row, 0, number);
    attempts_table_->setItem(row, 1, attempt_item(plan_text));
    attempts_table_->setItem(row, 2, attempt_item(QString::number(a.devices), true));
    const QString steps = a.start_step && a.end_step ? QStringLiteral("%1–%2").arg(*a.start_step).arg(*a.end_step)
                          : a.start_step             ? tr("from %1").arg(*a.start_step)
                                                     : tr("none");
    attempts_table_->setItem(row, 3, attempt_item(steps, true));
    attempts_table_->setItem(row, 4, attempt_item(QString::fromUtf8(core::to_string(a.status).data())));
    attempts_table_->setItem(row, 5, attempt_item(QString::fromStdString(a.cause.value_or(""))));
    if (a.attempt == shown) shown_row = row;
  }
  if (shown_row >= 0) attempts_table_->selectRow(shown_row);
  const int rows_height = attempts_table_->horizontalHeader()->height() + 2 * attempts_table_->frameWidth() +
                          attempts_table_->verticalHeader()->length();
  attempts_table_->setFixedHeight(std::min(rows_height + 2, 160));
}

int RunsView::attemptCount() const { return attempt_count_; }

qint64 RunsView::comparedAttempt() const { return comparison_model_->comparison() ? compared_attempt_ : 0; }

void RunsView::selectAttempt(qint64 attempt) {
  if (selected_run_ == 0) return;
  selected_attempt_ = attempt;
  compared_.reset();
  showSelectedRun();
}

void RunsView::clearRunDetails(const QString& why) {
  attempt_count_ = 0;
  attempts_table_->setRowCount(0);
  attempts_table_->hide();
  run_title_->setText(why);
  loss_series_->clear();
  measured_time_series_->clear();
  predicted_time_series_->clear();
  predicted_time_series_->setName(tr("predicted"));
  set_step_axis_range(loss_step_axis_, 0, 1);
  set_step_axis_range(time_step_axis_, 0, 1);
  comparison_model_->clear();
  comparison_title_->setText(tr("Predicted vs measured: select a finished run."));
  compared_.reset();
  compared_attempt_ = 0;
}

void RunsView::showError(const QString& message) {
  error_label_->setText(message);
  error_label_->show();
}

void RunsView::showMessage(const QString& title, const QString& message) {
  last_message_ = message;
  auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
  box->setAttribute(Qt::WA_DeleteOnClose);
  box->open();
}

void RunsView::updateActions() {
  const bool store = !store_path_.isEmpty();
  import_button_->setEnabled(store);
  const size_t selected = runs_table_->selectionModel()->selectedRows().size();
  calibrate_button_->setEnabled(store && selected >= 1);
  calibrate_button_->setText(selected > 1 ? tr("Calibrate a profile from the %1 selected runs…").arg(selected)
                                          : tr("Calibrate a profile from the selected runs…"));
  // Only a run of Loom's own that failed or was cancelled has checkpoints to continue from.
  const int row = selected_run_ > 0 ? runs_model_->rowOfRun(selected_run_) : -1;
  const bool stopped = row >= 0 && runs_model_->row(row).source == QLatin1String("loom") &&
                       (runs_model_->row(row).status == core::RunStatus::failed ||
                        runs_model_->row(row).status == core::RunStatus::cancelled);
  replan_button_->setEnabled(store && stopped);
}

std::optional<plan::LogImportResult> RunsView::importLog(const QString& log_path, const QString& plan_path,
                                                        const QString& profile) {
  const QString title = tr("Cannot import %1").arg(QFileInfo(log_path).fileName());
  if (store_path_.isEmpty()) {
    showMessage(title, tr("No store to import into: choose one first (File ▸ Store)."));
    return std::nullopt;
  }
  try {
    const plan::DetectedLog detected = plan::detect_log(log_path.toStdString());
    plan::LogImportOptions options;
    options.plan_path = plan_path.toStdString();
    options.profile = profile.toStdString();
    core::Store store = core::Store::open(store_path_.toStdString());
    const plan::LogImportResult result = detected.source == "llmc"
                                             ? plan::import_llmc_log(store, log_path.toStdString(), options)
                                             : plan::import_megatron_log(store, log_path.toStdString(), options);
    QString summary = tr("Imported %1 as run %2: a %3 log (%4), %5 steps, steady step %6 ms, profile %7")
                          .arg(QFileInfo(log_path).fileName())
                          .arg(result.run_id)
                          .arg(source_label(QString::fromStdString(result.source)),
                               QString::fromStdString(result.variant))
                          .arg(result.steps)
                          .arg(result.steady_step_time_s * 1e3, 0, 'f', 1)
                          .arg(QString::fromStdString(result.profile_name));
    if (result.plan_from_arguments) summary += tr("; plan rebuilt from its arguments");
    if (result.ignored_lines > 0) summary += tr("; %1 not understood and skipped").arg(count_of(result.ignored_lines, "line"));
    if (result.status != core::RunStatus::completed)
      summary += tr("; %1: %2").arg(QString::fromUtf8(core::to_string(result.status).data()),
                                    QString::fromStdString(result.reason));
    status_label_->setText(summary + QStringLiteral("."));
    status_label_->show();
    refresh();
    selectRun(result.run_id);
    return result;
  } catch (const std::exception& e) {
    showMessage(title, QString::fromUtf8(e.what()));
    return std::nullopt;
  }
}

void RunsView::importLogWithDialog() {
  const QString log_path = QFileDialog::getOpenFileName(this, tr("Import a training log"), QString(),
                                                        tr("Training logs (*.log *.txt *.out);;All files (*)"));
  if (log_path.isEmpty()) return;
  plan::DetectedLog detected;
  try {
    detected = plan::detect_log(log_path.toStdString());
  } catch (const std::exception& e) {
    showMessage(tr("Cannot import %1").arg(QFileInfo(log_path).fileName()), QString::fromUtf8(e.what()));
    return;
  }
  ImportLogDialog dialog(log_path, QString::fromStdString(detected.source), detected.needs_plan, this);
  if (detected.needs_plan) {
    const QString plan_path = QFileDialog::getOpenFileName(this, tr("Plan the run trained"), QFileInfo(log_path).absolutePath(),
                                                           tr("Plans (*.json);;All files (*)"));
    if (plan_path.isEmpty()) return;
    dialog.setPlanPath(plan_path);
  }
  if (dialog.exec() != QDialog::Accepted) return;
  importLog(log_path, dialog.planPath(), dialog.profile());
}

QString RunsView::storedProfileOf(const std::vector<qint64>& run_ids) const {
  try {
    core::Store store = core::Store::open(store_path_.toStdString(), core::Store::OpenMode::existing);
    std::set<std::string> names;
    for (const qint64 id : run_ids) names.insert(store.run(id).profile_name.value_or(""));
    return names.size() == 1 ? QString::fromStdString(*names.begin()) : QString();
  } catch (const Error&) {
    return {};
  }
}

CalibrationDialog* RunsView::calibrateRuns(const std::vector<qint64>& run_ids, const QString& base_profile,
                                           int holdout) {
  const QString title = tr("Cannot calibrate a profile");
  QApplication::setOverrideCursor(Qt::WaitCursor);
  try {
    core::Store store = core::Store::open(store_path_.toStdString(), core::Store::OpenMode::existing);
    const auto [base, base_file] = resolve_base_profile(base_profile, store);
    const std::vector<sim::MeasuredRun> runs =
        sim::measured_runs(store, std::vector<int64_t>(run_ids.begin(), run_ids.end()));
    sim::CalibrationOptions options;
    options.holdout = holdout;
    sim::CalibrationResult result = sim::calibrate(base, runs, options);
    QApplication::restoreOverrideCursor();
    auto* dialog = new CalibrationDialog(std::move(result), base, base_file, store_path_, this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->open();
    return dialog;
  } catch (const std::exception& e) {
    QApplication::restoreOverrideCursor();
    showMessage(title, QString::fromUtf8(e.what()));
    return nullptr;
  }
}

void RunsView::calibrateSelectedRunsWithDialog() {
  const std::vector<qint64> runs = selectedRuns();
  if (runs.empty()) return;
  QStringList store_profiles;
  try {
    core::Store store = core::Store::open(store_path_.toStdString(), core::Store::OpenMode::existing);
    for (const core::ProfileRow& row : store.list_profiles()) store_profiles.prepend(QString::fromStdString(row.name));
  } catch (const Error&) {
    // The store cannot be read: calibrateRuns says so.
  }
  CalibrationSetupDialog setup(storedProfileOf(runs), int(runs.size()), store_profiles, this);
  if (setup.exec() != QDialog::Accepted) return;
  calibrateRuns(runs, setup.baseProfile(), setup.holdout());
}

QString RunsView::recordedCheckpointDir(qint64 run_id) const {
  try {
    core::Store store = core::Store::open(store_path_.toStdString(), core::Store::OpenMode::existing);
    const core::RunRow run = store.run(run_id);
    const core::Json json = core::Json::parse(run.run_json.empty() ? "{}" : run.run_json);
    if (json.is_object() && json.contains("checkpoint_dir") && json["checkpoint_dir"].is_string())
      return QString::fromStdString(json["checkpoint_dir"].get<std::string>());
  } catch (const std::exception&) {
    // Nothing recorded that can be read: the action asks for the directory.
  }
  return {};
}

int64_t RunsView::devicesLeftOf(qint64 run_id) const {
  try {
    core::Store store = core::Store::open(store_path_.toStdString(), core::Store::OpenMode::existing);
    const std::vector<core::RunAttemptRow> attempts = store.attempts(run_id);
    int64_t devices = 0;
    for (const core::RunAttemptRow& a : attempts)
      if (a.status == core::RunStatus::failed || a.status == core::RunStatus::cancelled) devices = a.devices;
    if (devices == 0 && !attempts.empty()) devices = attempts.back().devices;
    if (devices == 0) devices = store.plan(store.run(run_id).plan_id).world_size;
    return std::max<int64_t>(devices - 1, 1);
  } catch (const std::exception&) {
    return 1;
  }
}

std::optional<plan::ReplanResult> RunsView::replanCheckpoint(int64_t devices, const QString& checkpoint_dir) {
  const QString title = tr("Cannot re-plan");
  if (checkpoint_dir.trimmed().isEmpty()) {
    showMessage(title, tr("No checkpoint directory: choose the directory the run wrote its checkpoints to "
                          "(--checkpoint-dir)."));
    return std::nullopt;
  }
  QApplication::setOverrideCursor(Qt::WaitCursor);
  try {
    plan::ReplanRequest request;
    request.checkpoint_dir = checkpoint_dir.trimmed().toStdString();
    request.devices = devices;
    plan::ReplanResult result = plan::replan(request);
    QApplication::restoreOverrideCursor();
    if (!result.best) {
      showMessage(title, tr("No plan for the checkpoint's model fits in %1 GiB per device on %2 devices.")
                             .arg(double(result.request.profile.device.memory_bytes) / double(1 << 30), 0, 'f', 0)
                             .arg(devices));
      return std::nullopt;
    }
    return result;
  } catch (const std::exception& e) {
    QApplication::restoreOverrideCursor();
    showMessage(title, QString::fromUtf8(e.what()));
    return std::nullopt;
  }
}

std::optional<RunsView::ResumePlan> RunsView::resumeWith(const plan::ReplanResult& result,
                                                         const QString& checkpoint_dir) {
  if (!result.best) return std::nullopt;
  const QString path = fresh_plan_path(checkpoint_dir, result.best->cluster.world_size());
  // The plan as `loom replan` writes it; NewOnly: never over a file of the user's.
  QFile file(path);
  if (!file.open(QIODevice::WriteOnly | QIODevice::NewOnly) ||
      file.write(QByteArray::fromStdString(core::to_json(*result.best).dump(2) + "\n")) < 0 || !file.flush()) {
    const QString why = file.errorString();
    if (file.isOpen()) {
      file.close();
      file.remove();
    }
    showMessage(tr("Cannot write the re-planned plan"), tr("Cannot write %1: %2").arg(path, why));
    return std::nullopt;
  }
  file.close();
  ResumePlan resumed{*result.best, path, checkpoint_dir.trimmed()};
  QString summary = tr("Re-planned for %1 devices: %2, written to %3; Execute resumes it from %4.")
                        .arg(result.best->cluster.world_size())
                        .arg(replan_layout_text(*result.best), path, resumed.checkpoint_dir);
  if (!result.global_batch_note.empty())
    summary += QStringLiteral(" ") + tr("Note: %1").arg(QString::fromStdString(result.global_batch_note));
  status_label_->setText(summary);
  status_label_->show();
  emit resumeRequested(resumed.plan, resumed.plan_path, resumed.checkpoint_dir);
  return resumed;
}

std::optional<RunsView::ResumePlan> RunsView::replanAndResume(int64_t devices, const QString& checkpoint_dir) {
  const std::optional<plan::ReplanResult> result = replanCheckpoint(devices, checkpoint_dir);
  if (!result) return std::nullopt;
  return resumeWith(*result, checkpoint_dir);
}

ReplanDialog* RunsView::openReplanDialog(qint64 run_id) {
  const int row = runs_model_->rowOfRun(run_id);
  if (row < 0) return nullptr;
  QString dir = recordedCheckpointDir(run_id);
  if (dir.isEmpty() && directory_chooser_) dir = directory_chooser_(this, QString());
  if (dir.isEmpty()) return nullptr;
  const RunsModel::Row& run = runs_model_->row(row);
  const QString run_text = tr("Run %1 · %2 · %3%4")
                               .arg(run.id)
                               .arg(run.plan.toHtmlEscaped(), QString::fromUtf8(core::to_string(run.status).data()),
                                    run.reason.isEmpty() ? QString()
                                                         : QStringLiteral(" (%1)").arg(run.reason.toHtmlEscaped()));
  auto* dialog = new ReplanDialog(
      run_text, devicesLeftOf(run_id), dir,
      [this](int64_t devices, const QString& checkpoint_dir) { return replanCheckpoint(devices, checkpoint_dir); },
      directory_chooser_, this);
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  connect(dialog, &QDialog::accepted, this, [this, dialog] {
    if (dialog->replanResult()) resumeWith(*dialog->replanResult(), dialog->checkpointDir());
  });
  dialog->open();
  return dialog;
}

void RunsView::replanSelectedRunWithDialog() {
  if (selected_run_ > 0) openReplanDialog(selected_run_);
}

}  // namespace loom::gui
