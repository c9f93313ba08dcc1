#pragma once
// Importing another framework's training log (`loom import` in the GUI): once the Runs view has
// chosen the log and plan::detect_log has said who wrote it, this dialog shows what will be
// imported and asks for what the log does not say: the plan it trained (llm.c logs, and Megatron
// logs without an arguments block) and the profile to predict it with.

#include <QDialog>
#include <QString>

class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;

namespace loom::gui {

class ImportLogDialog : public QDialog {
  Q_OBJECT
 public:
  // `source`: "megatron" or "llmc", as detect_log said; `needs_plan`: the log cannot rebuild it.
  ImportLogDialog(const QString& log_path, const QString& source, bool needs_plan,
                  QWidget* parent = nullptr);

  QString planPath() const;
  // A profile name or file; "" for the import's default (the plan's profile, else h100-80gb-dgx).
  QString profile() const;
  void setPlanPath(const QString& path);

 private:
  void updateImportButton();

  bool needs_plan_ = false;
  QLineEdit* plan_ = nullptr;
  QComboBox* profile_ = nullptr;
  QPushButton* import_ = nullptr;
};

}  // namespace loom::gui
