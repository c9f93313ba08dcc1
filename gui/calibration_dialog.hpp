#pragma once
// Calibrating a profile from the runs selected in the Runs view (`loom calibrate` in the GUI):
// CalibrationSetupDialog asks for the base profile and how many runs to hold out;
// CalibrationDialog shows what sim::calibrate returned (each parameter before → after ± 1σ, or
// why the runs do not determine it; each run's measured step time against the predictions before
// and after; the step-time error on the fitted and the held-out runs) and saves the profile.

// Qt before Loom: moc (Qt 6.4) fails to parse <concepts> when it is the first standard header.
#include <QDialog>
#include <QString>
#include <QStringList>

#include "simulator/calibration.hpp"

#include <cstdint>
#include <filesystem>

class QComboBox;
class QLabel;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace loom::gui {

class CalibrationSetupDialog : public QDialog {
  Q_OBJECT
 public:
  // `stored_profile`: the profile the runs were predicted with, when they share one ("" if not),
  // offered first; then `store_profiles` (those the store keeps, such as earlier calibrations),
  // the built-in profiles, and a profile file.
  CalibrationSetupDialog(const QString& stored_profile, int runs,
                         const QStringList& store_profiles = {}, QWidget* parent = nullptr);

  // A built-in profile name, a stored profile's name, or a profile JSON file.
  QString baseProfile() const;
  int holdout() const;

 private:
  QComboBox* profile_ = nullptr;
  QSpinBox* holdout_ = nullptr;
};

class CalibrationDialog : public QDialog {
  Q_OBJECT
 public:
  enum ParameterColumn { parameter, before, after, change, note, parameter_column_count };
  enum RunColumn { run, role, measured, predicted_before, predicted_after, run_column_count };

  // `base_profile_file`: the base profile's file, which saving refuses to overwrite (empty for a
  // built-in or stored profile); `store_path`: where the runs are, recorded in the profile.
  CalibrationDialog(sim::CalibrationResult result, const core::Profile& base,
                    std::filesystem::path base_profile_file, const QString& store_path,
                    QWidget* parent = nullptr);

  const sim::CalibrationResult& result() const { return result_; }
  QTableWidget* parametersTable() const { return parameters_; }
  QTableWidget* runsTable() const { return runs_; }
  QString errorsText() const;
  // Writes the calibrated profile to `path` (atomically; its name is the file's stem) and keeps it
  // in the store, as `loom calibrate` does. Throws
  // loom::Error for the base profile's own file, the store, or a file that cannot be written.
  void saveProfile(const QString& path);

 private:
  void saveWithDialog();

  sim::CalibrationResult result_;
  std::filesystem::path base_profile_file_;
  QString store_path_;
  QTableWidget* parameters_ = nullptr;
  QTableWidget* runs_ = nullptr;
  QLabel* errors_ = nullptr;
  QLabel* saved_ = nullptr;
  QPushButton* save_ = nullptr;
};

// A parameter's value as the dialog shows it: ms/µs for seconds, GiB/MiB for bytes, ×, else 4
// significant digits (`digits` 2 for an uncertainty).
QString calibration_quantity(double value, const std::string& unit, int digits = 4);
// "1 run", "3 runs": English plurals without a translator loaded.
QString count_of(int64_t count, const char* noun);

}  // namespace loom::gui
