#include "gui/results_view.hpp"

#include "gui/models/plan_filter_model.hpp"
#include "gui/models/plan_table_model.hpp"
#include "gui/models/reject_reasons_model.hpp"
#include "gui/pareto_chart.hpp"

#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QTableView>
#include <QVBoxLayout>

namespace loom::gui {
namespace {

QString seconds_text(double s) {
  return s >= 1.0 ? QString::number(s, 'f', 3) + " s" : QString::number(s * 1e3, 'f', 2) + " ms";
}

QTableView* make_table() {
  auto* table = new QTableView;
  table->setSortingEnabled(true);
  table->setSelectionBehavior(QAbstractItemView::SelectRows);
  table->setSelectionMode(QAbstractItemView::SingleSelection);
  table->setAlternatingRowColors(true);
  table->verticalHeader()->hide();
  table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  table->verticalHeader()->setDefaultSectionSize(table->fontMetrics().height() + 6);
  return table;
}

}  // namespace

ResultsView::ResultsView(QWidget* parent)
    : QWidget(parent),
      plans_(new PlanTableModel(this)),
      filter_(new PlanFilterModel(this)),
      rejects_(new RejectReasonsModel(this)) {
  filter_->setSourceModel(plans_);
  summary_ = new QLabel(tr("No search yet: fill in the Plan view and press Search."));
  summary_->setWordWrap(true);
  filter_edit_ = new QLineEdit;
  filter_edit_->setPlaceholderText(tr("Filter, e.g.  tp=2  pp>=4  interleaved  \"step time\"<1.5  \"peak memory\"<6e10"));
  filter_edit_->setClearButtonEnabled(true);
  connect(filter_edit_, &QLineEdit::textChanged, filter_, &PlanFilterModel::setFilterExpression);

  table_ = make_table();
  table_->setModel(filter_);
  table_->sortByColumn(PlanTableModel::rank, Qt::AscendingOrder);
  connect(table_->selectionModel(), &QItemSelectionModel::currentRowChanged, this, &ResultsView::onCurrentRowChanged);
  connect(table_, &QTableView::doubleClicked, this, [this](const QModelIndex& index) {
    if (!request_ || !index.isValid()) return;
    emit planActivated(plans_->row(filter_->mapToSource(index).row()).plan, request_->profile);
  });

  reject_table_ = make_table();
  auto* reject_sorter = new QSortFilterProxyModel(this);
  reject_sorter->setSourceModel(rejects_);
  reject_sorter->setSortRole(RejectReasonsModel::SortRole);
  reject_table_->setModel(reject_sorter);
  reject_table_->sortByColumn(RejectReasonsModel::combinations, Qt::DescendingOrder);
  reject_table_->horizontalHeader()->setSectionResizeMode(RejectReasonsModel::reason, QHeaderView::Stretch);

  chart_ = new ParetoChart;
  connect(chart_, &ParetoChart::rowClicked, this, &ResultsView::selectRow);

  // The table gets the full width (it has many columns); the reasons and the chart share the
  // space below it.
  auto* top = new QWidget;
  auto* top_layout = new QVBoxLayout(top);
  top_layout->setContentsMargins(0, 0, 0, 0);
  top_layout->addWidget(filter_edit_);
  top_layout->addWidget(table_);
  auto* rejects = new QWidget;
  auto* rejects_layout = new QVBoxLayout(rejects);
  rejects_layout->setContentsMargins(0, 0, 0, 0);
  rejects_layout->addWidget(new QLabel(tr("Combinations set aside, by reason")));
  rejects_layout->addWidget(reject_table_);
  auto* bottom = new QSplitter(Qt::Horizontal);
  bottom->addWidget(rejects);
  bottom->addWidget(chart_);
  bottom->setStretchFactor(0, 2);
  bottom->setStretchFactor(1, 3);
  auto* splitter = new QSplitter(Qt::Vertical);
  splitter->addWidget(top);
  splitter->addWidget(bottom);
  splitter->setStretchFactor(0, 1);
  splitter->setStretchFactor(1, 1);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(summary_);
  layout->addWidget(splitter, 1);
}

void ResultsView::setResult(std::shared_ptr<const plan::SearchResult> result,
                            std::shared_ptr<const plan::SearchRequest> request) {
  result_ = std::move(result);
  request_ = std::move(request);
  const int64_t capacity = request_->profile.device.memory_bytes;
  plans_->setResult(*result_);
  rejects_->setRejects(result_->rejects, capacity);
  chart_->setPlans(*plans_, capacity);
  const plan::SearchStats& s = result_->stats;
  const QLocale english(QLocale::English);
  const QString model = QString::fromStdString(request_->model.name);
  if (result_->top.empty())
    summary_->setText(tr("No plan of %1 fits on %2 devices of %3: the table shows the nearest misses.")
                          .arg(model)
                          .arg(request_->devices)
                          .arg(QString::fromStdString(request_->profile_name)));
  else
    summary_->setText(tr("%1 on %2 devices (%3): %4 combinations, %5 valid, %6 fit. Best: %7 per step. "
                         "Showing the best %8 and the Pareto front (%9 plans); double-click a plan for its details.")
                          .arg(model)
                          .arg(request_->devices)
                          .arg(QString::fromStdString(request_->profile_name))
                          .arg(english.toString(qlonglong(s.combinations)))
                          .arg(english.toString(qlonglong(s.valid)))
                          .arg(english.toString(qlonglong(s.fitting)))
                          .arg(seconds_text(result_->top.front().prediction.step_time_s))
                          .arg(result_->top.size())
                          .arg(result_->pareto.size()));
  table_->sortByColumn(PlanTableModel::rank, Qt::AscendingOrder);
  selectRow(plans_->bestRow());
}

void ResultsView::selectRow(int model_row) {
  if (model_row < 0 || model_row >= plans_->rowCount()) {
    table_->clearSelection();
    chart_->highlightRow(-1);
    return;
  }
  const QModelIndex index = filter_->mapFromSource(plans_->index(model_row, 0));
  if (!index.isValid()) {  // filtered out: show it again
    filter_edit_->clear();
  }
  const QModelIndex shown = filter_->mapFromSource(plans_->index(model_row, 0));
  table_->selectionModel()->setCurrentIndex(shown, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
  table_->scrollTo(shown);
}

void ResultsView::setFilterExpression(const QString& expression) { filter_edit_->setText(expression); }

void ResultsView::onCurrentRowChanged() {
  const QModelIndex current = table_->selectionModel()->currentIndex();
  if (!current.isValid() || !request_) return;
  const int row = filter_->mapToSource(current).row();
  chart_->highlightRow(row);
  emit planSelected(plans_->row(row).plan, request_->profile);
}

}  // namespace loom::gui
