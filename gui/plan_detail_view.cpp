#include "gui/plan_detail_view.hpp"
#include "gui/models/units.hpp"

#include "core/error.hpp"
#include "core/output_file.hpp"
#include "core/plan_json.hpp"
#include "gui/memory_chart.hpp"
#include "gui/models/breakdown_model.hpp"
#include "gui/models/plan_switches.hpp"
#include "gui/pipeline_stage_table.hpp"
#include "gui/plan_switches_editor.hpp"
#include "gui/timeline_widget.hpp"
#include "planner/megatron_args.hpp"
#include "simulator/trace.hpp"

#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLocale>
#include <QMessageBox>
#include <QPainter>
#include <QPushButton>
#include <QScrollArea>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStyledItemDelegate>
#include <QTableView>
#include <QTextDocument>
#include <QVBoxLayout>
#include <QtConcurrent/QtConcurrentRun>

namespace loom::gui {
namespace {


// What a simulation job hands back to the GUI thread: a prediction, or why there is none.
struct SimulationOutcome {
  std::shared_ptr<const sim::Prediction> prediction;
  QString error;
};

// Through Loom's one writer (core/output_file.hpp): never onto a special file, whole or not at all.
void write_text_file(const QString& path, const std::string& text) {
  core::write_output_file(QFile::encodeName(path).toStdString(), text);
}

QString on_off(bool on) {
  return on ? PlanDetailView::tr("on") : PlanDetailView::tr("off");
}

// Draws the share of the step as a bar behind its number, so the big categories stand out.
class ShareBarDelegate : public QStyledItemDelegate {
 public:
  using QStyledItemDelegate::QStyledItemDelegate;
  void paint(QPainter* painter, const QStyleOptionViewItem& option,
             const QModelIndex& index) const override {
    const double fraction = std::clamp(index.data(BreakdownModel::SortRole).toDouble(), 0.0, 1.0);
    const QRect bar = option.rect.adjusted(2, 3, -2, -3);
    painter->fillRect(QRect(bar.topLeft(), QSize(int(bar.width() * fraction), bar.height())),
                      QColor(0x1e, 0x88, 0xe5, 60));
    QStyledItemDelegate::paint(painter, option, index);
  }
};

}  // namespace

PlanDetailView::PlanDetailView(QWidget* parent) : QWidget(parent) {
  header_ = new QLabel;
  header_->setTextFormat(Qt::RichText);
  header_->setWordWrap(true);
  header_->setTextInteractionFlags(Qt::TextSelectableByMouse);

  export_plan_ = new QPushButton(tr("Export plan JSON…"));
  export_plan_->setToolTip(tr("Write the plan as plan.json, for `loom run` and `loom show`"));
  export_megatron_ = new QPushButton(tr("Export Megatron arguments…"));
  export_megatron_->setToolTip(
      tr("Write a Megatron-LM pretrain_gpt.py launch command with this plan's arguments"));
  export_trace_ = new QPushButton(tr("Export Perfetto trace…"));
  export_trace_->setToolTip(
      tr("Write the simulated timeline as Chrome trace-event JSON (opens in ui.perfetto.dev)"));
  execute_ = new QPushButton(tr("Execute this plan…"));
  execute_->setToolTip(tr("Run this plan with `loom run` in the Execute view"));
  status_ = new QLabel;
  auto* buttons = new QHBoxLayout;
  for (QPushButton* button : {export_plan_, export_megatron_, export_trace_})
    buttons->addWidget(button);
  buttons->addStretch(1);
  buttons->addWidget(status_);
  buttons->addWidget(execute_);

  switches_ = new PlanSwitchesEditor;

  memory_chart_ = new MemoryChart;

  breakdown_model_ = new BreakdownModel(this);
  auto* sorted_breakdown = new QSortFilterProxyModel(this);
  sorted_breakdown->setSourceModel(breakdown_model_);
  sorted_breakdown->setSortRole(BreakdownModel::SortRole);
  breakdown_table_ = new QTableView;
  breakdown_table_->setModel(sorted_breakdown);
  breakdown_table_->setSortingEnabled(true);
  breakdown_table_->sortByColumn(BreakdownModel::category, Qt::AscendingOrder);
  breakdown_table_->setItemDelegateForColumn(BreakdownModel::share,
                                             new ShareBarDelegate(breakdown_table_));
  breakdown_table_->verticalHeader()->hide();
  // Compact rows, so that all of them show without taking the timeline's height.
  breakdown_table_->verticalHeader()->setDefaultSectionSize(
      breakdown_table_->fontMetrics().height() + 8);
  // Tall enough for every row: the hidden communication comes last, easily missed below a scroll.
  breakdown_table_->setMinimumHeight(breakdown_table_->horizontalHeader()->sizeHint().height() +
                                     BreakdownModel::category_count *
                                         breakdown_table_->verticalHeader()->defaultSectionSize() +
                                     2 * breakdown_table_->frameWidth());
  breakdown_table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  breakdown_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  breakdown_table_->horizontalHeader()->setSectionResizeMode(BreakdownModel::category,
                                                             QHeaderView::Stretch);
  breakdown_table_->horizontalHeader()->setSectionResizeMode(BreakdownModel::time,
                                                             QHeaderView::ResizeToContents);
  breakdown_table_->horizontalHeader()->setSectionResizeMode(BreakdownModel::share,
                                                             QHeaderView::ResizeToContents);
  critical_rank_note_ = new QLabel;
  critical_rank_note_->setWordWrap(true);
  auto* breakdown_box = new QGroupBox(tr("Step time breakdown"));
  auto* breakdown_layout = new QVBoxLayout(breakdown_box);
  breakdown_layout->addWidget(breakdown_table_);
  breakdown_layout->addWidget(critical_rank_note_);

  timeline_ = new TimelineWidget;
  auto* timeline_scroll = new QScrollArea;
  timeline_scroll->setWidget(timeline_);
  timeline_scroll->setWidgetResizable(true);
  timeline_scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  timeline_scroll->setFrameShape(QFrame::NoFrame);
  zoom_out_ = new QPushButton(tr("Zoom out"));
  zoom_out_->setToolTip(
      tr("Back to the range shown before the last zoom (or right click the timeline)"));
  whole_step_ = new QPushButton(tr("Whole step"));
  visible_range_ = new QLabel;
  auto* hint =
      new QLabel(tr("Wheel or drag to zoom · right click to zoom out · Shift+wheel to pan · "
                    "hover a box for details"));
  hint->setEnabled(false);
  auto* timeline_tools = new QHBoxLayout;
  timeline_tools->addWidget(zoom_out_);
  timeline_tools->addWidget(whole_step_);
  timeline_tools->addWidget(visible_range_);
  timeline_tools->addStretch(1);
  timeline_tools->addWidget(hint);
  auto* timeline_box = new QGroupBox(tr("Pipeline timeline of one step"));
  auto* timeline_layout = new QVBoxLayout(timeline_box);
  timeline_layout->addLayout(timeline_tools);
  timeline_layout->addWidget(timeline_scroll, 1);

  // Per stage: ranks, device group, layers, memory against that group's capacity (uneven splits
  // and mixed clusters make stages differ).
  stage_table_ = new PipelineStageTable;
  auto* stages_box = new QGroupBox(tr("Pipeline stages"));
  auto* stages_layout = new QVBoxLayout(stages_box);
  stages_layout->addWidget(stage_table_);

  auto* charts = new QSplitter(Qt::Horizontal);
  charts->addWidget(memory_chart_);
  charts->addWidget(breakdown_box);
  charts->setStretchFactor(0, 3);
  charts->setStretchFactor(1, 2);
  auto* sections = new QSplitter(Qt::Vertical);
  sections->addWidget(charts);
  // Full width, between the charts and the timeline: its columns need the room, and its rows are
  // the timeline's pipeline ranks.
  sections->addWidget(stages_box);
  sections->addWidget(timeline_box);
  sections->setStretchFactor(0, 2);
  sections->setStretchFactor(1, 0);
  sections->setStretchFactor(2, 3);
  // The timeline of a deep pipeline needs the height more than the chart does; the top keeps what
  // the ten-row table and its note need, the stages a few rows (the table scrolls beyond).
  sections->setSizes({430, 110, 430});

  auto* layout = new QVBoxLayout(this);
  layout->addWidget(header_);
  layout->addWidget(switches_);
  layout->addLayout(buttons);
  layout->addWidget(sections, 1);

  connect(export_plan_, &QPushButton::clicked, this, [this] {
    exportWithDialog(tr("Export plan JSON"), QStringLiteral(".json"),
                     tr("Plan JSON (*.json);;All files (*)"), &PlanDetailView::exportPlanJson);
  });
  connect(export_megatron_, &QPushButton::clicked, this, [this] {
    exportWithDialog(tr("Export Megatron arguments"), QStringLiteral("-megatron.sh"),
                     tr("Shell script (*.sh);;All files (*)"),
                     &PlanDetailView::exportMegatronArguments);
  });
  connect(export_trace_, &QPushButton::clicked, this, [this] {
    exportWithDialog(tr("Export Perfetto trace"), QStringLiteral("-trace.json"),
                     tr("Chrome trace JSON (*.json);;All files (*)"), &PlanDetailView::exportTrace);
  });
  connect(execute_, &QPushButton::clicked, this, &PlanDetailView::executeRequested);
  connect(switches_, &PlanSwitchesEditor::planEdited, this, [this](const core::Plan& plan) {
    if (!profile_) return;
    showPlan(plan, *profile_);
    emit planEdited(plan);
  });
  connect(zoom_out_, &QPushButton::clicked, timeline_, &TimelineWidget::zoomOut);
  connect(whole_step_, &QPushButton::clicked, timeline_, &TimelineWidget::resetZoom);
  connect(timeline_, &TimelineWidget::visibleRangeChanged, this,
          [this](double start_s, double end_s) {
            zoom_out_->setEnabled(timeline_->zoomDepth() > 0);
            whole_step_->setEnabled(timeline_->zoomDepth() > 0);
            visible_range_->setText(
                hasPlan() ? tr("showing %1 – %2").arg(duration_text(start_s), duration_text(end_s))
                          : QString());
          });

  header_->setText(
      tr("<b>No plan shown.</b> Search in <i>Plan</i> and pick one in <i>Results</i>, "
         "or open a plan file."));
  setExportsEnabled(false);
  zoom_out_->setEnabled(false);
  whole_step_->setEnabled(false);
}

void PlanDetailView::showPlan(const core::Plan& plan, const core::Profile& profile) {
  const quint64 job = ++simulation_job_;
  simulating_ = true;
  profile_ = profile;
  status_->setText(tr("Simulating %1…").arg(QString::fromStdString(plan.model.name)));
  auto* watcher = new QFutureWatcher<SimulationOutcome>(this);
  connect(watcher, &QFutureWatcherBase::finished, this, [this, watcher, job, plan] {
    watcher->deleteLater();
    if (job != simulation_job_) return;  // a later showPlan() asked for another plan
    simulating_ = false;
    status_->clear();
    const SimulationOutcome outcome = watcher->result();
    if (!outcome.prediction) return showFailure(outcome.error);
    present(plan, outcome.prediction);
  });
  // The job owns copies of its inputs and never touches the view: the watcher brings the result
  // back to the GUI thread, and a view closed meanwhile simply never hears of it.
  watcher->setFuture(QtConcurrent::run([plan, profile]() -> SimulationOutcome {
    try {
      // The simulator assumes a valid plan; say which rule a broken one breaks instead.
      plan.validate();
      sim::SimulationOptions options;
      options.record_timeline = true;
      // A mixed cluster names each group's profile itself; `profile` stands for one kind only.
      if (plan.cluster.mixed())
        return {std::make_shared<const sim::Prediction>(
                    sim::simulate(plan, core::resolve_group_profiles(plan.cluster), options)),
                {}};
      return {std::make_shared<const sim::Prediction>(sim::simulate(plan, profile, options)), {}};
    } catch (const std::exception& e) {
      return {nullptr, QString::fromUtf8(e.what())};
    }
  }));
}

void PlanDetailView::present(const core::Plan& plan,
                             std::shared_ptr<const sim::Prediction> prediction) {
  plan_ = plan;
  prediction_ = std::move(prediction);
  const sim::Prediction& p = *prediction_;
  const core::ParallelPlan& parallel = plan.parallel;

  // summaryText() in rich text: the model in bold, the verdict in colour.
  const QString settings =
      tr("<b style='font-size:large'>%1</b> &nbsp; on %2 × %3 &nbsp;·&nbsp; tp %4 · pp %5 · dp %6 "
         "· vpp %7 · "
         "micro-batch %8 · %9 microbatches · schedule %10 · recompute %11 · sequence parallel %12 "
         "· "
         "distributed optimizer %13 · attention %14 · %15")
          .arg(QString::fromStdString(plan.model.name).toHtmlEscaped())
          .arg(plan.cluster.world_size())
          .arg(QString::fromStdString(p.profile_name).toHtmlEscaped())
          .arg(parallel.tensor_parallel)
          .arg(parallel.pipeline_parallel)
          .arg(parallel.data_parallel)
          .arg(plan.virtual_stages())
          .arg(parallel.micro_batch_size)
          .arg(plan.microbatches())
          .arg(QString::fromUtf8(core::to_string(parallel.schedule).data()))
          .arg(QString::fromUtf8(core::to_string(parallel.recompute).data()))
          .arg(on_off(parallel.sequence_parallel), on_off(parallel.distributed_optimizer),
               attention_backend_text(parallel.attention_backend),
               overlaps_description(parallel).toHtmlEscaped());
  const QString verdict = p.fits ? tr("<span style='color:#2e7d32'><b>fits</b></span>")
                                 : tr("<span style='color:#c62828'><b>does not fit</b></span>");
  const QString metrics = tr("step time <b>%1</b> · <b>%2</b> tokens/s · MFU <b>%3 %</b> · peak "
                             "memory <b>%4 GiB</b> of %5 GiB: %6")
                              .arg(duration_text(p.step_time_s))
                              .arg(QLocale().toString(p.tokens_per_s, 'f', 0))
                              .arg(p.mfu * 100, 0, 'f', 1)
                              .arg(double(p.peak_memory_bytes) / kGiB, 0, 'f', 1)
                              .arg(double(p.device_memory_bytes) / kGiB, 0, 'f', 1)
                              .arg(verdict);
  header_->setText(settings + "<br>" + metrics);

  memory_chart_->setMemory(p.memory, p.device_memory_bytes);
  stage_table_->setStages(plan, p);
  breakdown_model_->setBreakdown(p.breakdown, p.step_time_s);
  critical_rank_note_->setText(
      tr("Times of the critical (slowest) pipeline rank, %1; all but the hidden communication add "
         "up to the step time, %2. Hidden communication ran beside compute and took no step time.")
          .arg(p.critical_pipeline_rank)
          .arg(duration_text(p.step_time_s)));
  switches_->setPlan(plan);
  timeline_->setTimeline(p.timeline, int(parallel.pipeline_parallel));
  setExportsEnabled(true);
  emit planShown();
}

void PlanDetailView::showFailure(const QString& message) {
  plan_.reset();
  prediction_.reset();
  header_->setText(tr("<span style='color:#c62828'><b>Cannot simulate this plan:</b> %1</span>")
                       .arg(message.toHtmlEscaped()));
  memory_chart_->clear();
  stage_table_->clearStages();
  breakdown_model_->clear();
  critical_rank_note_->clear();
  switches_->clear();
  timeline_->clear();
  setExportsEnabled(false);
  emit simulationFailed(message);
}

QString PlanDetailView::summaryText() const {
  if (!plan_ || !prediction_) return {};
  const core::ParallelPlan& parallel = plan_->parallel;
  const sim::Prediction& p = *prediction_;
  return tr("%1: tp %2, pp %3, dp %4, vpp %5, micro-batch %6, schedule %7, recompute %8, sequence "
            "parallel %9, "
            "distributed optimizer %10, attention %11, overlap %12\n"
            "step time %13, %14 tokens/s, MFU %15 %, peak memory %16 GiB of %17 GiB: %18")
      .arg(QString::fromStdString(plan_->model.name))
      .arg(parallel.tensor_parallel)
      .arg(parallel.pipeline_parallel)
      .arg(parallel.data_parallel)
      .arg(plan_->virtual_stages())
      .arg(parallel.micro_batch_size)
      .arg(QString::fromUtf8(core::to_string(parallel.schedule).data()))
      .arg(QString::fromUtf8(core::to_string(parallel.recompute).data()))
      .arg(on_off(parallel.sequence_parallel), on_off(parallel.distributed_optimizer),
           attention_backend_text(parallel.attention_backend), overlaps_text(parallel))
      .arg(duration_text(p.step_time_s))
      .arg(p.tokens_per_s, 0, 'f', 0)
      .arg(p.mfu * 100, 0, 'f', 1)
      .arg(double(p.peak_memory_bytes) / kGiB, 0, 'f', 1)
      .arg(double(p.device_memory_bytes) / kGiB, 0, 'f', 1)
      .arg(p.fits ? tr("fits") : tr("does not fit"));
}

bool PlanDetailView::hasPlan() const {
  return plan_.has_value() && prediction_ != nullptr;
}

void PlanDetailView::exportPlanJson(const QString& path) const {
  if (!hasPlan()) throw InvalidInput("no plan is shown to export");
  write_text_file(path, core::to_json(*plan_).dump(2) + "\n");
}

void PlanDetailView::exportMegatronArguments(const QString& path) const {
  if (!hasPlan()) throw InvalidInput("no plan is shown to export");
  write_text_file(path, plan::megatron_command(*plan_));
}

void PlanDetailView::exportTrace(const QString& path) const {
  if (!hasPlan()) throw InvalidInput("no plan is shown to export");
  write_text_file(path, sim::chrome_trace_text(*plan_, *prediction_));
}

TimelineWidget* PlanDetailView::timeline() const {
  return timeline_;
}

MemoryChart* PlanDetailView::memoryChart() const {
  return memory_chart_;
}

void PlanDetailView::setExportsEnabled(bool enabled) {
  for (QPushButton* button : {export_plan_, export_megatron_, export_trace_, execute_})
    button->setEnabled(enabled);
}

QString PlanDetailView::suggestedFileName(const QString& suffix) const {
  const core::ParallelPlan& parallel = plan_->parallel;
  const QString base = QStringLiteral("%1-tp%2-pp%3-dp%4")
                           .arg(QString::fromStdString(plan_->model.name))
                           .arg(parallel.tensor_parallel)
                           .arg(parallel.pipeline_parallel)
                           .arg(parallel.data_parallel);
  const QString directory = export_directory_.isEmpty() ? QDir::currentPath() : export_directory_;
  return QDir(directory).filePath(base + suffix);
}

void PlanDetailView::exportWithDialog(const QString& title, const QString& suffix,
                                      const QString& filter,
                                      void (PlanDetailView::*write)(const QString&) const) {
  if (!hasPlan()) return;
  const QString path = QFileDialog::getSaveFileName(this, title, suggestedFileName(suffix), filter);
  if (path.isEmpty()) return;
  try {
    (this->*write)(path);
    export_directory_ = QFileInfo(path).absolutePath();
    status_->setText(tr("Wrote %1").arg(QFileInfo(path).fileName()));
  } catch (const std::exception& e) {
    QMessageBox::critical(this, title, QString::fromUtf8(e.what()));
  }
}

}  // namespace loom::gui
