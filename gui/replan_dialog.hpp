#pragma once
// "Re-plan and resume…" of the Runs view: for a run that failed (or was cancelled), the devices
// left and the checkpoint directory it wrote; the planner's re-plan for them (`loom replan DIR
// --devices N`), its best plan and, where it had to change, the note on the global batch. Accepted,
// the Runs view writes the plan and hands it to Execute to run with --resume.

#include "planner/replan.hpp"

#include <QDialog>
#include <QString>

#include <cstdint>
#include <functional>
#include <optional>

class QDialogButtonBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;

namespace loom::gui {

class ReplanDialog : public QDialog {
  Q_OBJECT
 public:
  // Runs the planner for the devices and the directory; shows its own error and returns nothing on
  // failure.
  using Replanner = std::function<std::optional<plan::ReplanResult>(int64_t devices,
                                                                    const QString& checkpoint_dir)>;
  // Asks for a directory (a QFileDialog in the app; tests answer it themselves); "" for none.
  using DirectoryChooser = std::function<QString(QWidget* parent, const QString& start)>;

  ReplanDialog(const QString& run_text, int64_t devices, const QString& checkpoint_dir,
               Replanner replanner, DirectoryChooser chooser, QWidget* parent = nullptr);

  int64_t devices() const;
  void setDevices(int64_t devices);
  QString checkpointDir() const;
  void setCheckpointDir(const QString& dir);

  // Re-plans for the devices and directory shown; returns whether there is a plan to resume with.
  bool replan();
  // The last re-plan, while the devices and directory are still the ones it was made for.
  const std::optional<plan::ReplanResult>& replanResult() const { return result_; }
  // The best plan and the note, as shown ("" before a re-plan).
  QString resultText() const;
  QPushButton* resumeButton() const { return resume_button_; }

 private:
  void forgetResult();

  Replanner replanner_;
  DirectoryChooser chooser_;
  std::optional<plan::ReplanResult> result_;
  QSpinBox* devices_ = nullptr;
  QLineEdit* checkpoint_dir_ = nullptr;
  QLabel* result_label_ = nullptr;
  QDialogButtonBox* buttons_ = nullptr;
  QPushButton* resume_button_ = nullptr;
};

// One line for a plan as the re-plan shows it: "tp 1 · pp 1 · dp 3, micro-batch 3, global batch 9,
// on 3 devices (1 node × 3)".
QString replan_layout_text(const core::Plan& plan);

}  // namespace loom::gui
