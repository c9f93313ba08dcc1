#include "gui/calibration_dialog.hpp"

#include "core/error.hpp"
#include "core/output_file.hpp"
#include "core/profile.hpp"
#include "core/store.hpp"
#include "simulator/run_comparison.hpp"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMessageBox>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace loom::gui {
namespace {

constexpr int kFileItemRole = Qt::UserRole + 1;

QString seconds(double s) {
  if (s >= 1) return QStringLiteral("%1 s").arg(s, 0, 'f', 3);
  if (s >= 1e-3) return QStringLiteral("%1 ms").arg(s * 1e3, 0, 'f', 2);
  return QStringLiteral("%1 µs").arg(s * 1e6, 0, 'f', 2);
}

QString with_error(double predicted, double measured) {
  return QStringLiteral("%1 (%2%3 %)")
      .arg(seconds(predicted))
      .arg(predicted >= measured ? "+" : "")
      .arg(sim::error_percent(predicted, measured), 0, 'f', 1);
}

QTableWidgetItem* item(const QString& text, bool number, const QString& tooltip = {}) {
  auto* cell = new QTableWidgetItem(text);
  cell->setFlags(Qt::ItemIsEnabled | Qt::ItemIsSelectable);
  cell->setTextAlignment(number ? Qt::AlignRight | Qt::AlignVCenter
                                : Qt::AlignLeft | Qt::AlignVCenter);
  if (!tooltip.isEmpty()) cell->setToolTip(tooltip);
  return cell;
}

QTableWidget* make_table(const QStringList& headers) {
  auto* table = new QTableWidget(0, int(headers.size()));
  table->setHorizontalHeaderLabels(headers);
  table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table->setSelectionBehavior(QAbstractItemView::SelectRows);
  table->setAlternatingRowColors(true);
  table->verticalHeader()->hide();
  table->horizontalHeader()->setHighlightSections(false);
  // Read-only: focus (and the keyboard) starts on the buttons, not on a first cell.
  table->setFocusPolicy(Qt::ClickFocus);
  return table;
}

// Units that the value's text already says.
bool unit_in_value(const std::string& unit) {
  return unit == "×" || unit == "s" || unit == "bytes" || unit == "FLOP";
}

}  // namespace

QString count_of(int64_t count, const char* noun) {
  return QStringLiteral("%1 %2%3").arg(count).arg(QLatin1String(noun)).arg(count == 1 ? "" : "s");
}

QString calibration_quantity(double value, const std::string& unit, int digits) {
  if (unit == "bytes") {
    const double mib = value / double(1 << 20);
    return mib >= 1024 ? QStringLiteral("%1 GiB").arg(mib / 1024, 0, 'g', digits + 1)
                       : QStringLiteral("%1 MiB").arg(mib, 0, 'g', digits + 1);
  }
  if (unit == "s") return seconds(value);
  if (unit == "FLOP") {
    static const char* const prefixes[] = {"", "k", "M", "G", "T", "P"};
    int power = 0;
    double scaled = value;
    while (std::abs(scaled) >= 1000 && power < 5) {
      scaled /= 1000;
      ++power;
    }
    return QStringLiteral("%1 %2FLOP").arg(scaled, 0, 'g', digits).arg(prefixes[power]);
  }
  return QStringLiteral("%1%2")
      .arg(value, 0, 'g', digits)
      .arg(unit == "×" ? QStringLiteral("×") : QString());
}

CalibrationSetupDialog::CalibrationSetupDialog(const QString& stored_profile, int runs,
                                               const QStringList& store_profiles, QWidget* parent)
    : QDialog(parent) {
  setWindowTitle(tr("Calibrate a profile"));
  profile_ = new QComboBox;
  if (!stored_profile.isEmpty())
    profile_->addItem(tr("%1 (the runs' profile)").arg(stored_profile), stored_profile);
  for (const QString& name : store_profiles)
    if (name != stored_profile && profile_->findData(name) < 0)
      profile_->addItem(tr("%1 (in the store)").arg(name), name);
  for (const core::Profile& builtin : core::builtin_profiles()) {
    const QString name = QString::fromStdString(builtin.name);
    if (profile_->findData(name) < 0) profile_->addItem(name, name);
  }
  profile_->addItem(tr("Profile file…"), QString());
  profile_->setItemData(profile_->count() - 1, true, kFileItemRole);
  connect(profile_, &QComboBox::activated, this, [this](int index) {
    if (!profile_->itemData(index, kFileItemRole).toBool()) return;
    const QString file = QFileDialog::getOpenFileName(this, tr("Base profile"), QString(),
                                                      tr("Profiles (*.json);;All files (*)"));
    if (file.isEmpty()) {
      profile_->setCurrentIndex(0);
      return;
    }
    profile_->insertItem(index, file, file);
    profile_->setCurrentIndex(index);
  });

  holdout_ = new QSpinBox;
  holdout_->setRange(0, std::max(0, runs - 2));
  holdout_->setToolTip(
      tr("Runs left out of the fit, spread over the selection: the error on them is the figure to "
         "trust. At most the runs less 2."));

  auto* explanation = new QLabel(
      tr("Fits the base profile's efficiency parameters to the %1 selected. A parameter is changed "
         "only where the runs determine it; the others keep their base value, with the reason.")
          .arg(count_of(runs, "run")));
  explanation->setWordWrap(true);
  auto* form = new QFormLayout;
  form->addRow(tr("Base profile:"), profile_);
  form->addRow(tr("Hold out:"), holdout_);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
  buttons->button(QDialogButtonBox::Ok)->setText(tr("Calibrate"));
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(explanation);
  layout->addLayout(form);
  layout->addWidget(buttons);
}

QString CalibrationSetupDialog::baseProfile() const {
  return profile_->currentData().toString();
}

int CalibrationSetupDialog::holdout() const {
  return holdout_->value();
}

CalibrationDialog::CalibrationDialog(sim::CalibrationResult result, const core::Profile& base,
                                     std::filesystem::path base_profile_file,
                                     const QString& store_path, QWidget* parent)
    : QDialog(parent),
      result_(std::move(result)),
      base_profile_file_(std::move(base_profile_file)),
      store_path_(store_path) {
  setWindowTitle(tr("Calibrated profile"));
  QStringList fitted, held;
  for (const sim::RunFit& r : result_.runs)
    (r.held_out ? held : fitted).append(QString::number(r.run_id));
  auto* title = new QLabel(
      tr("<b>%1</b> (%2) calibrated to runs %3%4.")
          .arg(QString::fromStdString(base.name).toHtmlEscaped(),
               QString::fromStdString(base.provenance).toHtmlEscaped(), fitted.join(", "),
               held.isEmpty() ? QString() : tr(", holding out runs %1").arg(held.join(", "))));
  title->setWordWrap(true);

  parameters_ = make_table(
      {tr("Parameter"), tr("Before"), tr("After ± 1σ"), tr("Change"), tr("Unit / why not fitted")});
  parameters_->setRowCount(int(result_.parameters.size()));
  const QColor undetermined(0x70, 0x70, 0x70);
  for (int i = 0; i < int(result_.parameters.size()); ++i) {
    const sim::ParameterFit& p = result_.parameters[size_t(i)];
    const QString reason = QString::fromStdString(p.reason);
    parameters_->setItem(i, parameter, item(QString::fromStdString(p.name), false));
    parameters_->setItem(i, before, item(calibration_quantity(p.before, p.unit), true));
    if (!p.determined) {
      parameters_->setItem(i, after, item(tr("not determined"), false, reason));
      parameters_->setItem(i, change, item(QStringLiteral("–"), true));
      parameters_->setItem(i, note, item(reason, false, reason));
      for (int c = 0; c < parameter_column_count; ++c)
        parameters_->item(i, c)->setForeground(undetermined);
      continue;
    }
    QString value = calibration_quantity(p.after, p.unit);
    if (p.uncertainty)
      value += QStringLiteral(" ± ") + calibration_quantity(*p.uncertainty, p.unit, 2);
    parameters_->setItem(i, after, item(value, true));
    const QString ratio = p.before != 0 ? QStringLiteral("%1%2 %")
                                              .arg(p.after >= p.before ? "+" : "")
                                              .arg(100 * (p.after / p.before - 1), 0, 'f', 1)
                                        : QStringLiteral("–");
    parameters_->setItem(i, change, item(ratio, true));
    QString unit = unit_in_value(p.unit) ? QString() : QString::fromStdString(p.unit);
    if (p.at_bound)
      unit += (unit.isEmpty() ? QString() : QStringLiteral("; ")) + tr("at its bound");
    if (!reason.isEmpty()) unit += (unit.isEmpty() ? QString() : QStringLiteral("; ")) + reason;
    parameters_->setItem(i, note, item(unit, false, reason));
    QFont bold = parameters_->item(i, after)->font();
    bold.setBold(true);
    parameters_->item(i, after)->setFont(bold);
  }
  parameters_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  parameters_->horizontalHeader()->setSectionResizeMode(note, QHeaderView::Stretch);

  runs_ = make_table(
      {tr("Run"), QString(), tr("Measured step"), tr("Predicted before"), tr("Predicted after")});
  runs_->setRowCount(int(result_.runs.size()));
  for (int i = 0; i < int(result_.runs.size()); ++i) {
    const sim::RunFit& r = result_.runs[size_t(i)];
    runs_->setItem(i, run, item(QString::fromStdString(r.label), false));
    runs_->setItem(i, role, item(r.held_out ? tr("held out") : tr("fitted"), false));
    runs_->setItem(i, measured, item(seconds(r.measured_step_s), true));
    runs_->setItem(i, predicted_before,
                   item(with_error(r.predicted_before_s, r.measured_step_s), true));
    runs_->setItem(i, predicted_after,
                   item(with_error(r.predicted_after_s, r.measured_step_s), true));
  }
  runs_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  runs_->horizontalHeader()->setSectionResizeMode(run, QHeaderView::Stretch);

  errors_ = new QLabel(errorsText());
  errors_->setWordWrap(true);
  saved_ = new QLabel;
  saved_->setWordWrap(true);
  saved_->setTextInteractionFlags(Qt::TextSelectableByMouse);

  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close);
  save_ = buttons->addButton(tr("Save profile…"), QDialogButtonBox::ActionRole);
  connect(save_, &QPushButton::clicked, this, &CalibrationDialog::saveWithDialog);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);

  auto* layout = new QVBoxLayout(this);
  layout->addWidget(title);
  layout->addWidget(new QLabel(tr("Parameters")));
  layout->addWidget(parameters_, 3);
  layout->addWidget(new QLabel(
      tr("Step time per run: measured, and predicted with the base and the calibrated profile")));
  layout->addWidget(runs_, 2);
  layout->addWidget(errors_);
  layout->addWidget(saved_);
  layout->addWidget(buttons);
  resize(1100, 700);
}

QString CalibrationDialog::errorsText() const {
  const int held = int(std::count_if(result_.runs.begin(), result_.runs.end(),
                                     [](const sim::RunFit& r) { return r.held_out; }));
  QString text =
      tr("Step-time error on the %1 fitted (mean |error|): %2 % before, %3 % after.")
          .arg(count_of(int(result_.runs.size()) - held, "run"))
          .arg(result_.fit_step_error_before_percent, 0, 'f', 1)
          .arg(result_.fit_step_error_after_percent, 0, 'f', 1);
  if (result_.holdout_step_error_before_percent && result_.holdout_step_error_after_percent)
    text += QStringLiteral("\n") +
            tr("Step-time error on the %1 held out: %2 % before, %3 % after (the figure to "
               "trust).")
                .arg(count_of(held, "run"))
                .arg(*result_.holdout_step_error_before_percent, 0, 'f', 1)
                .arg(*result_.holdout_step_error_after_percent, 0, 'f', 1);
  else
    text += QStringLiteral("\n") +
            tr("No run held out: the error after is on the runs fitted, an optimistic figure.");
  return text;
}

void CalibrationDialog::saveProfile(const QString& path) {
  const std::filesystem::path target = path.toStdString();
  const std::vector<std::filesystem::path> inputs = {base_profile_file_, store_path_.toStdString()};
  core::check_output_target(target, inputs);
  core::Profile profile = result_.profile;
  profile.name = target.stem().string();
  if (profile.calibration) profile.calibration->store = store_path_.toStdString();
  core::write_output_file(target, core::to_json(profile).dump(2) + "\n", inputs);
  result_.profile.name = profile.name;
  // As `loom calibrate` does: the store keeps the profile beside the runs it was fitted to, and
  // offers it as a base the next time.
  core::Store store = core::Store::open(store_path_.toStdString(), core::Store::OpenMode::existing);
  const int64_t stored_id = store.insert_profile(
      core::ProfileRow{0, profile.name, "calibrated", std::nullopt, "", core::to_json(profile).dump()});
  saved_->setText(tr("Wrote %1 (profile %2, provenance calibrated; stored as profile %3 in the store): "
                     "choose it as a profile file to plan with it.")
                      .arg(path, QString::fromStdString(profile.name))
                      .arg(stored_id));
}

void CalibrationDialog::saveWithDialog() {
  const QString start =
      base_profile_file_.empty()
          ? QDir::current().filePath(QStringLiteral("calibrated.json"))
          : QFileInfo(QString::fromStdString(base_profile_file_.string())).absolutePath() +
                QStringLiteral("/calibrated.json");
  const QString path = QFileDialog::getSaveFileName(this, tr("Save calibrated profile"), start,
                                                    tr("Profiles (*.json)"));
  if (path.isEmpty()) return;
  try {
    saveProfile(path);
  } catch (const Error& e) {
    QMessageBox::warning(this, tr("Cannot save the profile"), QString::fromStdString(e.what()));
  }
}

}  // namespace loom::gui
