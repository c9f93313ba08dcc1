#pragma once
// Results: the plans a search ranked, in a sortable table that a typed expression filters
// ("tp=2 pp>=4 interleaved"); why every other combination was set aside, with counts; and the
// Pareto chart of step time against peak memory, where clicking a point selects its plan.

#include "planner/search.hpp"

#include <QWidget>

#include <memory>

class QLabel;
class QLineEdit;
class QTableView;

namespace loom::gui {

class ParetoChart;
class PlanFilterModel;
class PlanTableModel;
class RejectReasonsModel;

class ResultsView : public QWidget {
  Q_OBJECT
 public:
  explicit ResultsView(QWidget* parent = nullptr);

  void setResult(std::shared_ptr<const plan::SearchResult> result, std::shared_ptr<const plan::SearchRequest> request);
  // Selects a row of the plan model (as clicking it would); -1 clears the selection.
  void selectRow(int model_row);
  void setFilterExpression(const QString& expression);

  PlanTableModel* planModel() const { return plans_; }
  PlanFilterModel* filterModel() const { return filter_; }
  RejectReasonsModel* rejectModel() const { return rejects_; }
  ParetoChart* paretoChart() const { return chart_; }
  const plan::SearchRequest* request() const { return request_.get(); }

 signals:
  // A plan was selected (clicked in the table or the chart); the profile is the search's.
  void planSelected(const core::Plan& plan, const core::Profile& profile);
  // A plan was double-clicked: show its details.
  void planActivated(const core::Plan& plan, const core::Profile& profile);

 private:
  void onCurrentRowChanged();

  PlanTableModel* plans_ = nullptr;
  PlanFilterModel* filter_ = nullptr;
  RejectReasonsModel* rejects_ = nullptr;
  QTableView* table_ = nullptr;
  QTableView* reject_table_ = nullptr;
  QLineEdit* filter_edit_ = nullptr;
  QLabel* summary_ = nullptr;
  ParetoChart* chart_ = nullptr;
  std::shared_ptr<const plan::SearchResult> result_;
  std::shared_ptr<const plan::SearchRequest> request_;
};

}  // namespace loom::gui
