#pragma once
// Plan: the model (a preset, or its fields edited), the cluster (nodes, devices per node,
// profile), the training batch and the attention backend every searched plan keeps, each checked
// as it is typed with the core's own message shown next to the field; Search runs the planner off
// the GUI thread with progress and Cancel.

#include "gui/models/plan_inputs.hpp"
#include "planner/search.hpp"

#include <QWidget>

#include <map>
#include <memory>

class QCheckBox;
class QComboBox;
class QFormLayout;
class QLabel;
class QProgressBar;
class QPushButton;
class QSpinBox;

namespace loom::gui {

class SearchJob;
class ClusterGroupsField;

class PlanView : public QWidget {
  Q_OBJECT
 public:
  explicit PlanView(QWidget* parent = nullptr);
  ~PlanView() override;

  PlanInputs inputs() const;
  void setInputs(const PlanInputs& inputs);
  // Fills the model fields from a preset ("gpt3-1.3b"); InvalidInput for an unknown name.
  void selectPreset(const QString& name);
  // The message shown next to `field` ("num-attention-heads", "profile", …); empty when fine.
  QString problemShownFor(const QString& field) const;
  bool canSearch() const;
  bool isSearching() const;
  // How many plans the search ranks (its top list).
  void setTopPlans(int count) { top_plans_ = count; }

 public slots:
  void search();
  void cancelSearch();

 signals:
  void searchStarted();
  void searchFinished(std::shared_ptr<const plan::SearchResult> result,
                      std::shared_ptr<const plan::SearchRequest> request);
  void searchFailed(const QString& message);

 private:
  void buildForm();
  QSpinBox* addNumberField(QFormLayout* form, const QString& key, const QString& label, int minimum, int maximum);
  void showModel(const core::ModelSpec& model);
  void check();
  void saveSettings() const;
  void restoreSettings();

  QComboBox* preset_ = nullptr;
  QLabel* preset_source_ = nullptr;
  QLabel* profile_summary_ = nullptr;
  std::map<QString, QSpinBox*> numbers_;  // by field key
  std::map<QString, QLabel*> problems_;   // by field key
  QCheckBox* untied_ = nullptr;
  QComboBox* profile_ = nullptr;
  ClusterGroupsField* groups_ = nullptr;  // a mixed cluster's groups; empty for one kind
  QComboBox* dtype_ = nullptr;
  QComboBox* attention_ = nullptr;
  QCheckBox* uneven_splits_ = nullptr;
  QComboBox* objective_ = nullptr;
  QLabel* summary_ = nullptr;
  QLabel* general_problem_ = nullptr;
  QPushButton* search_button_ = nullptr;
  QPushButton* cancel_button_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* status_ = nullptr;
  SearchJob* job_ = nullptr;
  std::shared_ptr<const plan::SearchRequest> running_request_;
  std::string preset_name_;  // the preset the fields came from, "" once edited
  bool filling_ = false;     // fields being set by code, not typed
  int top_plans_ = 100;
};

}  // namespace loom::gui
