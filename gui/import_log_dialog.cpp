#include "gui/import_log_dialog.hpp"

#include "core/profile.hpp"
#include "gui/models/runs_model.hpp"
#include "planner/log_import.hpp"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QVBoxLayout>

namespace loom::gui {

ImportLogDialog::ImportLogDialog(const QString& log_path, const QString& source, bool needs_plan,
                                 QWidget* parent)
    : QDialog(parent), needs_plan_(needs_plan) {
  setWindowTitle(tr("Import a training log"));
  auto* log =
      new QLabel(tr("<b>%1</b>: a %2 log")
                     .arg(QFileInfo(log_path).fileName().toHtmlEscaped(), source_label(source)));
  log->setToolTip(log_path);
  const QString plan_help =
      needs_plan
          ? (source == QLatin1String("llmc") ? tr("An llm.c log does not say how the model was "
                                                  "split: choose the plan it trained.")
                                             : tr("This log has no arguments block to rebuild the "
                                                  "plan from: choose the plan it trained."))
          : tr("Optional: without a plan, it is rebuilt from the log's arguments block.");
  auto* help = new QLabel(plan_help);
  help->setWordWrap(true);

  plan_ = new QLineEdit;
  plan_->setPlaceholderText(needs_plan ? tr("required") : tr("rebuilt from the log"));
  connect(plan_, &QLineEdit::textChanged, this, &ImportLogDialog::updateImportButton);
  auto* browse = new QPushButton(tr("Browse…"));
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getOpenFileName(
        this, tr("Plan the run trained"), plan_->text(), tr("Plans (*.json);;All files (*)"));
    if (!path.isEmpty()) setPlanPath(path);
  });
  auto* plan_row = new QHBoxLayout;
  plan_row->addWidget(plan_, 1);
  plan_row->addWidget(browse);

  profile_ = new QComboBox;
  profile_->setEditable(true);
  profile_->addItem(
      tr("default: the plan's, else %1").arg(QString::fromUtf8(plan::kDefaultImportProfile)),
      QString());
  for (const core::Profile& builtin : core::builtin_profiles()) {
    const QString name = QString::fromStdString(builtin.name);
    profile_->addItem(name, name);
  }
  profile_->setToolTip(
      tr("The profile the run is predicted with, for the comparison: a built-in name or a profile "
         "JSON file"));

  auto* form = new QFormLayout;
  form->addRow(tr("Log:"), log);
  form->addRow(tr("Plan:"), plan_row);
  form->addRow(QString(), help);
  form->addRow(tr("Profile:"), profile_);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
  import_ = buttons->button(QDialogButtonBox::Ok);
  import_->setText(tr("Import"));
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addWidget(buttons);
  resize(560, sizeHint().height());
  updateImportButton();
}

QString ImportLogDialog::planPath() const {
  return plan_->text().trimmed();
}

QString ImportLogDialog::profile() const {
  // The first item is the default; any other text is a name or a file typed in.
  const int index = profile_->findText(profile_->currentText());
  if (index == 0) return {};
  return index > 0 ? profile_->itemData(index).toString() : profile_->currentText().trimmed();
}

void ImportLogDialog::setPlanPath(const QString& path) {
  plan_->setText(path);
}

void ImportLogDialog::updateImportButton() {
  import_->setEnabled(!needs_plan_ || !planPath().isEmpty());
}

}  // namespace loom::gui
