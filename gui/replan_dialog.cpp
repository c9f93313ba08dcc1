#include "gui/replan_dialog.hpp"

#include "gui/models/plan_switches.hpp"

#include <QDialogButtonBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include <algorithm>

namespace loom::gui {

QString replan_layout_text(const core::Plan& plan) {
  const core::ParallelPlan& p = plan.parallel;
  // An uneven split is part of the plan the run resumes under: say it.
  const QString split = plan.even_layer_split()
                            ? QString()
                            : QObject::tr(" (layers %1)").arg(layer_split_text(plan, QStringLiteral(", ")));
  return QObject::tr(
             "tp %1 · pp %2%9 · dp %3, micro-batch %4, global batch %5, on %6 devices (%7 × %8)")
      .arg(p.tensor_parallel)
      .arg(p.pipeline_parallel)
      .arg(p.data_parallel)
      .arg(p.micro_batch_size)
      .arg(plan.training.global_batch_size)
      .arg(plan.cluster.world_size())
      .arg(plan.cluster.nodes)
      .arg(plan.cluster.devices_per_node)
      .arg(split);
}

ReplanDialog::ReplanDialog(const QString& run_text, int64_t devices, const QString& checkpoint_dir,
                           Replanner replanner, DirectoryChooser chooser, QWidget* parent)
    : QDialog(parent), replanner_(std::move(replanner)), chooser_(std::move(chooser)) {
  setWindowTitle(tr("Re-plan and resume"));
  auto* intro = new QLabel(
      tr("%1<br>Plan the same model and training again for the devices left, and continue "
         "from the newest complete checkpoint (<tt>loom replan DIR --devices N</tt>).")
          .arg(run_text));
  intro->setWordWrap(true);
  intro->setTextFormat(Qt::RichText);

  devices_ = new QSpinBox;
  devices_->setObjectName(QStringLiteral("devices"));
  devices_->setRange(1, 1'000'000);
  devices_->setValue(int(std::clamp<int64_t>(devices, 1, 1'000'000)));
  devices_->setSuffix(tr(" devices"));
  checkpoint_dir_ = new QLineEdit(checkpoint_dir);
  checkpoint_dir_->setObjectName(QStringLiteral("checkpoint_dir"));
  checkpoint_dir_->setPlaceholderText(tr("the run's --checkpoint-dir"));
  auto* browse = new QPushButton(tr("Browse…"));
  auto* dir_row = new QHBoxLayout;
  dir_row->addWidget(checkpoint_dir_, 1);
  dir_row->addWidget(browse);
  auto* replan_button = new QPushButton(tr("Re-plan"));
  replan_button->setObjectName(QStringLiteral("replan"));
  auto* form = new QFormLayout;
  form->addRow(tr("Devices left:"), devices_);
  form->addRow(tr("Checkpoints:"), dir_row);
  form->addRow(QString(), replan_button);

  result_label_ = new QLabel;
  result_label_->setWordWrap(true);
  result_label_->setTextFormat(Qt::RichText);
  result_label_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  result_label_->setMinimumHeight(80);
  result_label_->setAlignment(Qt::AlignTop | Qt::AlignLeft);

  buttons_ = new QDialogButtonBox(QDialogButtonBox::Cancel);
  resume_button_ = buttons_->addButton(tr("Resume with this plan"), QDialogButtonBox::AcceptRole);
  resume_button_->setToolTip(
      tr("Write the plan next to the checkpoint directory and open it in Execute with "
         "--resume"));
  connect(buttons_, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons_, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(replan_button, &QPushButton::clicked, this, &ReplanDialog::replan);
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString dir = chooser_ ? chooser_(this, checkpointDir()) : QString();
    if (!dir.isEmpty()) setCheckpointDir(dir);
  });
  connect(devices_, &QSpinBox::valueChanged, this, &ReplanDialog::forgetResult);
  connect(checkpoint_dir_, &QLineEdit::textChanged, this, &ReplanDialog::forgetResult);

  auto* layout = new QVBoxLayout(this);
  layout->addWidget(intro);
  layout->addLayout(form);
  layout->addWidget(result_label_, 1);
  layout->addWidget(buttons_);
  resize(640, 320);
  forgetResult();
}

int64_t ReplanDialog::devices() const {
  return devices_->value();
}
void ReplanDialog::setDevices(int64_t devices) {
  devices_->setValue(int(std::clamp<int64_t>(devices, 1, 1'000'000)));
}
QString ReplanDialog::checkpointDir() const {
  return checkpoint_dir_->text().trimmed();
}
void ReplanDialog::setCheckpointDir(const QString& dir) {
  checkpoint_dir_->setText(dir);
}
QString ReplanDialog::resultText() const {
  return result_ ? result_label_->text() : QString();
}

void ReplanDialog::forgetResult() {
  result_.reset();
  result_label_->setText(tr("<i>Re-plan to see the best plan for these devices.</i>"));
  resume_button_->setEnabled(false);
}

bool ReplanDialog::replan() {
  forgetResult();
  std::optional<plan::ReplanResult> result =
      replanner_ ? replanner_(devices(), checkpointDir()) : std::nullopt;
  if (!result || !result->best) return false;
  const plan::RankedPlan* ranked =
      result->search.top.empty() ? nullptr : &result->search.top.front();
  QString text =
      tr("Checkpoint <b>step %1</b> in %2, written by %3.<br>Best plan: <b>%4</b>")
          .arg(result->checkpoint.step)
          .arg(QString::fromStdString(result->checkpoint.step_directory.string()).toHtmlEscaped(),
               replan_layout_text(result->checkpoint.plan), replan_layout_text(*result->best));
  if (ranked)
    text += tr("; predicted %1 ms per step, peak memory %2 GiB")
                .arg(ranked->prediction.step_time_s * 1e3, 0, 'f', 1)
                .arg(double(ranked->prediction.peak_memory_bytes) / double(1 << 30), 0, 'f', 2);
  text += QStringLiteral(".");
  if (!result->global_batch_note.empty())
    text += tr("<br><span style=\"color:#b06000\">Note: %1</span>")
                .arg(QString::fromStdString(result->global_batch_note).toHtmlEscaped());
  for (const std::string& skipped : result->checkpoint.skipped)
    text += tr("<br>Skipped %1").arg(QString::fromStdString(skipped).toHtmlEscaped());
  result_ = std::move(result);
  result_label_->setText(text);
  resume_button_->setEnabled(true);
  return true;
}

}  // namespace loom::gui
