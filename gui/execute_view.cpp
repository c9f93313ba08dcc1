#include "gui/execute_view.hpp"

#include "core/error.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"
#include "gui/models/plan_switches.hpp"
#include "gui/step_axis.hpp"

#include <QCheckBox>
#include <QComboBox>
#include <QFile>
#include <QFileDialog>
#include <QFontDatabase>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLineSeries>
#include <QtCharts/QValueAxis>

#include <cmath>

namespace loom::gui {
namespace {

// The live table keeps the latest steps only: a long run would otherwise grow it without end.
constexpr int kShownSteps = 2000;

QString plan_text(const core::Plan& plan) {
  const core::ParallelPlan& p = plan.parallel;
  return QObject::tr("<b>%1</b> on %2 rank(s): tp %3 · pp %4 · dp %5, micro-batch %6, global batch %7 sequences "
                     "of %8 tokens, %9, %10 attention, %11; profile %12")
      .arg(QString::fromStdString(plan.model.name).toHtmlEscaped())
      .arg(plan.cluster.world_size())
      .arg(p.tensor_parallel)
      .arg(p.pipeline_parallel)
      .arg(p.data_parallel)
      .arg(p.micro_batch_size)
      .arg(plan.training.global_batch_size)
      .arg(plan.model.seq_length)
      .arg(QString::fromUtf8(core::to_string(plan.training.dtype).data()))
      .arg(attention_backend_text(p.attention_backend))
      .arg(overlaps_description(p).toHtmlEscaped())
      .arg(QString::fromStdString(plan.cluster.profile).toHtmlEscaped());
}

QTableWidgetItem* number_item(const QString& text) {
  auto* item = new QTableWidgetItem(text);
  item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
  return item;
}

}  // namespace

ExecuteView::ExecuteView(QWidget* parent) : QWidget(parent) {
  plan_summary_ = new QLabel(tr("No plan selected: pick one in Results or open a plan file."));
  plan_summary_->setWordWrap(true);
  plan_summary_->setTextFormat(Qt::RichText);

  steps_ = new QSpinBox;
  steps_->setRange(1, 10'000'000);
  steps_->setSuffix(tr(" steps"));
  data_path_ = new QLineEdit;
  data_path_->setPlaceholderText(tr("built-in corpus"));
  data_path_->setToolTip(tr("A token shard (.bin, llm.c format) or a text file; empty: the built-in corpus"));
  auto* browse = new QPushButton(tr("Browse…"));
  auto* data_row = new QHBoxLayout;
  data_row->addWidget(data_path_, 1);
  data_row->addWidget(browse);
  // Only the backends `loom run` accepts: it refuses cuda until the executor has a CUDA backend.
  backend_ = new QComboBox;
  backend_->setObjectName(QStringLiteral("backend"));
  backend_->addItem(tr("CPU (Eigen + MPI)"), QStringLiteral("cpu"));
  backend_->setToolTip(tr("The backends loom run accepts; this build's executor has no CUDA backend yet"));
  launcher_ = new QComboBox;
  launcher_->addItem(tr("mpirun"), QStringLiteral("mpirun"));
  launcher_->addItem(tr("srun (Slurm)"), QStringLiteral("srun"));
  launcher_->addItem(tr("none (one process, or already under a launcher)"), QStringLiteral("none"));
  store_label_ = new QLabel;
  store_label_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  store_label_->setWordWrap(true);
  profile_ = new QComboBox;
  profile_->setEditable(true);
  for (const core::Profile& profile : core::builtin_profiles()) profile_->addItem(QString::fromStdString(profile.name));
  profile_->setToolTip(tr("The profile whose prediction the run is stored against, for Runs and `loom compare`: "
                          "a built-in profile, or a profile JSON file measured by `loom profile` on this machine"));
  auto* browse_profile = new QPushButton(tr("Browse…"));
  auto* profile_row = new QHBoxLayout;
  profile_row->addWidget(profile_, 1);
  profile_row->addWidget(browse_profile);
  profile_note_ = new QLabel;
  profile_note_->setWordWrap(true);
  threads_ = new QSpinBox;
  threads_->setRange(0, 1024);
  threads_->setSpecialValueText(tr("auto: cores ÷ ranks per node"));
  threads_->setSuffix(tr(" per rank"));
  threads_->setToolTip(tr("Threads of each rank; loom run binds each rank to as many cores, and warns when the "
                          "ranks of a node need more cores than it has"));

  checkpoint_dir_ = new QLineEdit;
  checkpoint_dir_->setObjectName(QStringLiteral("checkpoint_dir"));
  checkpoint_dir_->setPlaceholderText(tr("none: no checkpoints"));
  checkpoint_dir_->setToolTip(tr("--checkpoint-dir: where the run writes its checkpoints"));
  auto* browse_checkpoints = new QPushButton(tr("Browse…"));
  resume_ = new QCheckBox(tr("Resume from the newest complete checkpoint there"));
  resume_->setObjectName(QStringLiteral("resume"));
  resume_->setToolTip(tr("--resume: continue the run its checkpoints were written by"));
  auto* checkpoint_row = new QHBoxLayout;
  checkpoint_row->addWidget(checkpoint_dir_, 1);
  checkpoint_row->addWidget(browse_checkpoints);

  auto* form = new QFormLayout;
  form->addRow(tr("Steps:"), steps_);
  form->addRow(tr("Data:"), data_row);
  form->addRow(tr("Backend:"), backend_);
  form->addRow(tr("Launcher:"), launcher_);
  form->addRow(tr("Profile:"), profile_row);
  form->addRow(QString(), profile_note_);
  form->addRow(tr("Threads:"), threads_);
  form->addRow(tr("Checkpoints:"), checkpoint_row);
  form->addRow(QString(), resume_);
  form->addRow(tr("Store:"), store_label_);

  command_ = new QPlainTextEdit;
  command_->setReadOnly(true);
  command_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  command_->setMaximumHeight(80);
  command_->setToolTip(tr("The command Start runs; copy it to run the same from a terminal"));

  start_button_ = new QPushButton(tr("Start"));
  start_button_->setDefault(true);
  cancel_button_ = new QPushButton(tr("Cancel"));
  cancel_button_->setToolTip(tr("Stops every rank; the run is recorded as cancelled"));
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(start_button_);
  buttons->addWidget(cancel_button_);
  buttons->addStretch(1);

  progress_ = new QProgressBar;
  progress_->setFormat(tr("step %v of %m"));
  progress_->setRange(0, 1);
  progress_->setValue(0);
  status_ = new QLabel(tr("Not started"));
  status_->setWordWrap(true);
  status_->setTextInteractionFlags(Qt::TextSelectableByMouse);

  log_ = new QPlainTextEdit;
  log_->setReadOnly(true);
  log_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  log_->setMaximumBlockCount(5000);
  log_->setPlaceholderText(tr("Messages of loom run and its ranks"));
  log_->setLineWrapMode(QPlainTextEdit::WidgetWidth);

  auto* options = new QGroupBox(tr("Run"));
  auto* options_layout = new QVBoxLayout(options);
  options_layout->addWidget(plan_summary_);
  options_layout->addLayout(form);
  options_layout->addWidget(new QLabel(tr("Command:")));
  options_layout->addWidget(command_);
  options_layout->addLayout(buttons);
  options_layout->addWidget(progress_);
  options_layout->addWidget(status_);
  options_layout->addWidget(new QLabel(tr("Messages:")));
  options_layout->addWidget(log_, 1);

  steps_table_ = new QTableWidget(0, 4);
  steps_table_->setHorizontalHeaderLabels({tr("Step"), tr("Loss"), tr("Step time"), tr("Throughput")});
  steps_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  steps_table_->verticalHeader()->hide();
  steps_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  steps_table_->setSelectionBehavior(QAbstractItemView::SelectRows);

  loss_series_ = new QLineSeries;
  loss_series_->setName(tr("training loss"));
  auto* chart = new QChart;
  chart->addSeries(loss_series_);
  chart->setTitle(tr("Loss"));
  chart->legend()->hide();
  step_axis_ = new QValueAxis;
  step_axis_->setTitleText(tr("step"));
  set_step_axis_range(step_axis_, 0, 1);
  loss_axis_ = new QValueAxis;
  loss_axis_->setTitleText(tr("loss (nats/token)"));
  loss_axis_->setLabelFormat(QStringLiteral("%.2f"));
  chart->addAxis(step_axis_, Qt::AlignBottom);
  chart->addAxis(loss_axis_, Qt::AlignLeft);
  loss_series_->attachAxis(step_axis_);
  loss_series_->attachAxis(loss_axis_);
  loss_chart_ = new QChartView(chart);
  loss_chart_->setRenderHint(QPainter::Antialiasing);
  loss_chart_->setMinimumHeight(220);

  auto* live = new QSplitter(Qt::Vertical);
  live->addWidget(loss_chart_);
  live->addWidget(steps_table_);
  live->setStretchFactor(0, 1);
  live->setStretchFactor(1, 1);

  auto* split = new QSplitter(Qt::Horizontal);
  split->addWidget(options);
  split->addWidget(live);
  split->setStretchFactor(0, 2);
  split->setStretchFactor(1, 3);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(split);

  connect(steps_, &QSpinBox::valueChanged, this, &ExecuteView::updateCommand);
  connect(data_path_, &QLineEdit::textChanged, this, &ExecuteView::updateCommand);
  connect(backend_, &QComboBox::currentIndexChanged, this, &ExecuteView::updateCommand);
  connect(launcher_, &QComboBox::currentIndexChanged, this, &ExecuteView::updateCommand);
  connect(profile_, &QComboBox::currentTextChanged, this, &ExecuteView::showProfile);
  connect(threads_, &QSpinBox::valueChanged, this, &ExecuteView::updateCommand);
  connect(checkpoint_dir_, &QLineEdit::textChanged, this, [this] {
    updateCommand();
    updateButtons();
  });
  connect(resume_, &QCheckBox::toggled, this, &ExecuteView::updateCommand);
  connect(browse_checkpoints, &QPushButton::clicked, this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Checkpoint directory"), checkpoint_dir_->text());
    if (!dir.isEmpty()) checkpoint_dir_->setText(dir);
  });
  connect(browse_profile, &QPushButton::clicked, this, [this] {
    const QString path =
        QFileDialog::getOpenFileName(this, tr("Profile"), QString(), tr("Profiles (*.json);;All files (*)"));
    if (!path.isEmpty()) setProfile(path);
  });
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, tr("Training data"), data_path_->text(),
                                                      tr("Token shards (*.bin);;Text (*.txt);;All files (*)"));
    if (!path.isEmpty()) data_path_->setText(path);
  });
  connect(start_button_, &QPushButton::clicked, this, &ExecuteView::start);
  connect(cancel_button_, &QPushButton::clicked, this, &ExecuteView::cancel);
  connect(&process_, &RunProcess::runStarted, this, [this](qint64 run_id) {
    run_id_ = run_id;
    setStatus(tr("Run %1 recorded in the store; waiting for the first step…").arg(run_id), "#2060b0");
    emit runStarted(run_id);
  });
  connect(&process_, &RunProcess::step, this, &ExecuteView::showStep);
  connect(&process_, &RunProcess::logLine, this, [this](const QString& line) { log_->appendPlainText(line); });
  connect(&process_, &RunProcess::finished, this, &ExecuteView::showFinished);
  updateCommand();
  updateButtons();
}

void ExecuteView::setPlan(const core::Plan& plan) {
  if (!isRunning()) resume_->setChecked(false);
  plan_ = plan;
  plan_summary_->setText(plan_text(plan));
  steps_->setValue(int(std::min<int64_t>(plan.training.train_iters, steps_->maximum())));
  setProfile(QString::fromStdString(plan.cluster.profile));
  if (!isRunning()) {
    writePlanFile();
    setStatus(tr("Ready"), "#404040");
  }
  updateCommand();
  updateButtons();
}

void ExecuteView::setResumePlan(const core::Plan& plan, const QString& checkpoint_dir) {
  if (isRunning()) return;  // Start is disabled meanwhile; the running one is not disturbed
  setPlan(plan);
  setCheckpointDir(checkpoint_dir);
  setResume(true);
  setStatus(tr("Ready to resume from the newest checkpoint in %1").arg(checkpoint_dir), "#404040");
}

void ExecuteView::setCheckpointDir(const QString& dir) { checkpoint_dir_->setText(dir); }
QString ExecuteView::checkpointDir() const { return checkpoint_dir_->text().trimmed(); }
void ExecuteView::setResume(bool resume) { resume_->setChecked(resume); }
bool ExecuteView::resume() const { return resume_->isChecked() && !checkpointDir().isEmpty(); }

void ExecuteView::setStorePath(const QString& path) {
  store_path_ = path;
  store_label_->setText(path.isEmpty() ? tr("none: the run is not recorded") : path);
  updateCommand();
}

void ExecuteView::setSteps(int steps) { steps_->setValue(steps); }
void ExecuteView::setThreads(int threads) { threads_->setValue(threads); }
int ExecuteView::threads() const { return threads_->value(); }
QString ExecuteView::profile() const { return profile_->currentText().trimmed(); }

void ExecuteView::setProfile(const QString& name_or_file) {
  if (profile_->findText(name_or_file) < 0) profile_->addItem(name_or_file);
  profile_->setCurrentText(name_or_file);
  showProfile();  // also when the text was already there
}

void ExecuteView::showProfile() {
  // A CPU profile was measured with some threads per rank: its prediction is of ranks that have
  // as many. Any other profile leaves the threads to loom run's launch rule.
  int threads = 0;
  QString note;
  try {
    const core::Profile p = core::resolve_profile(profile().toStdString());
    if (p.device.host_cores > 0) {
      threads = int(p.device.threads_per_rank);
      note = tr("measured on %1 (%2 cores), %3 thread(s) per rank: the run uses as many")
                 .arg(QString::fromStdString(p.device.name))
                 .arg(p.device.host_cores)
                 .arg(p.device.threads_per_rank);
    } else {
      note = tr("%1 profile of %2: not this CPU. To compare the run with a prediction for this machine, choose a "
                "profile measured on it (loom profile)")
                 .arg(QString::fromStdString(p.provenance), QString::fromStdString(p.device.name));
    }
  } catch (const Error& e) {
    note = QString::fromStdString(e.what());
  }
  profile_note_->setText(note);
  threads_->setValue(threads);
  updateCommand();
}

QString ExecuteView::commandLine() const { return process_.commandLine(request()); }
bool ExecuteView::isRunning() const { return process_.isRunning(); }
QString ExecuteView::statusText() const { return status_->text(); }

QString ExecuteView::planPath() const { return plan_dir_.filePath(QStringLiteral("plan.json")); }

RunRequest ExecuteView::request() const {
  RunRequest r;
  r.plan_path = planPath();
  r.steps = steps_->value();
  r.data_path = data_path_->text().trimmed();
  r.backend = backend_->currentData().toString();
  r.launcher = launcher_->currentData().toString();
  r.store_path = store_path_;
  r.profile = profile();
  r.threads = threads_->value();
  r.checkpoint_dir = checkpointDir();
  r.resume = resume();
  return r;
}

void ExecuteView::updateCommand() {
  command_->setPlainText(plan_ ? commandLine() : tr("Select a plan to see the command that runs it."));
}

void ExecuteView::updateButtons() {
  const bool running = isRunning();
  start_button_->setEnabled(plan_.has_value() && !running);
  cancel_button_->setEnabled(running);
  for (QWidget* option :
       std::initializer_list<QWidget*>{steps_, data_path_, backend_, launcher_, profile_, threads_, checkpoint_dir_})
    option->setEnabled(!running);
  resume_->setEnabled(!running && !checkpointDir().isEmpty());
}

bool ExecuteView::writePlanFile() {
  // The plan as `loom plan` and `loom init` write it: the command shown runs from a terminal too.
  QFile file(planPath());
  if (!plan_dir_.isValid() || !file.open(QIODevice::WriteOnly | QIODevice::Truncate) ||
      file.write(QByteArray::fromStdString(core::to_json(*plan_).dump(2) + "\n")) < 0) {
    setStatus(tr("Cannot write the plan for loom run to %1: %2").arg(planPath(), file.errorString()), "#b02020");
    return false;
  }
  return true;
}

void ExecuteView::start() {
  if (!plan_ || isRunning()) return;
  if (!writePlanFile()) return;
  last_step_ = 0;
  run_id_ = 0;
  steps_table_->setRowCount(0);
  log_->clear();
  loss_series_->clear();
  set_step_axis_range(step_axis_, 0, std::min(steps_->value(), 10));
  progress_->setRange(0, steps_->value());
  progress_->setValue(0);
  log_->appendPlainText(QStringLiteral("$ ") + commandLine());
  setStatus(tr("Starting %1 rank(s)…").arg(plan_->cluster.world_size()), "#2060b0");
  process_.start(request());
  updateButtons();
}

void ExecuteView::cancel() {
  if (!isRunning()) return;
  setStatus(tr("Cancelling: stopping every rank…"), "#b06000");
  cancel_button_->setEnabled(false);
  process_.cancel();
}

void ExecuteView::showStep(qint64 step, double loss, double step_time_s, double tokens_per_s) {
  last_step_ = step;
  last_loss_ = loss;
  last_step_time_s_ = step_time_s;
  progress_->setValue(int(std::min<qint64>(step, progress_->maximum())));
  const int row = steps_table_->rowCount();
  steps_table_->insertRow(row);
  steps_table_->setItem(row, 0, number_item(QString::number(step)));
  steps_table_->setItem(row, 1, number_item(std::isfinite(loss) ? QString::number(loss, 'f', 4) : tr("diverged")));
  steps_table_->setItem(row, 2, number_item(QStringLiteral("%1 ms").arg(step_time_s * 1e3, 0, 'f', 1)));
  steps_table_->setItem(row, 3, number_item(QStringLiteral("%1 tokens/s").arg(tokens_per_s, 0, 'f', 0)));
  if (steps_table_->rowCount() > kShownSteps) steps_table_->removeRow(0);
  steps_table_->scrollToBottom();
  if (std::isfinite(loss)) {
    if (loss_series_->count() == 0) loss_min_ = loss_max_ = loss;
    loss_min_ = std::min(loss_min_, loss);
    loss_max_ = std::max(loss_max_, loss);
    loss_series_->append(double(step), loss);
    // The axis grows with the run, so that a long run's first steps are not squeezed into a corner.
    if (double(step) > step_axis_->max())
      set_step_axis_range(step_axis_, 0, double(std::min<qint64>(steps_->value(), 2 * step)));
    const double margin = std::max(0.05, 0.05 * (loss_max_ - loss_min_));
    loss_axis_->setRange(loss_min_ - margin, loss_max_ + margin);
    loss_axis_->applyNiceNumbers();
  }
  setStatus(tr("Run %1: step %2 of %3, loss %4, %5 ms/step")
                .arg(run_id_)
                .arg(step)
                .arg(steps_->value())
                .arg(loss, 0, 'f', 4)
                .arg(step_time_s * 1e3, 0, 'f', 1),
            "#2060b0");
  emit stepReported(step, loss, step_time_s);
}

void ExecuteView::showFinished(qint64 run_id, bool succeeded, const QString& message) {
  const QString run = run_id > 0 ? tr("Run %1").arg(run_id) : tr("The run");
  if (succeeded)
    setStatus(tr("%1 completed: %2 steps, last loss %3, last step %4 ms. See Runs for predicted vs measured.")
                  .arg(run)
                  .arg(last_step_)
                  .arg(last_loss_, 0, 'f', 4)
                  .arg(last_step_time_s_ * 1e3, 0, 'f', 1),
              "#207020");
  else
    setStatus(tr("%1 failed: %2").arg(run, message), "#b02020");
  updateButtons();
  emit runFinished(run_id, succeeded);
}

void ExecuteView::setStatus(const QString& text, const QString& color) {
  status_->setText(text);
  status_->setStyleSheet(QStringLiteral("color: %1; font-weight: bold;").arg(color));
}

}  // namespace loom::gui
