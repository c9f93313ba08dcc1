#include "gui/models/plan_filter_model.hpp"

#include "gui/models/plan_table_model.hpp"

#include <QRegularExpression>

namespace loom::gui {

PlanFilterModel::PlanFilterModel(QObject* parent) : QSortFilterProxyModel(parent) {
  setSortRole(PlanTableModel::SortRole);
}

void PlanFilterModel::setFilterExpression(const QString& expression) {
  expression_ = expression;
  terms_ = parse(expression);
  invalidateFilter();
}

std::vector<PlanFilterModel::Term> PlanFilterModel::parse(const QString& expression) const {
  std::vector<Term> terms;
  // Column names may contain a space ("step time"), so comparisons are found first.
  static const QRegularExpression comparison(R"(([A-Za-z#\-][A-Za-z#\- ]*?)\s*(<=|>=|!=|=|<|>)\s*([0-9.eE+\-]+))");
  QString rest = expression;
  QRegularExpressionMatchIterator matches = comparison.globalMatch(expression);
  std::vector<std::pair<qsizetype, qsizetype>> taken;
  while (matches.hasNext()) {
    const QRegularExpressionMatch match = matches.next();
    const QString name = match.captured(1).trimmed();
    int column = -1;
    for (int c = 0; sourceModel() && c < sourceModel()->columnCount(); ++c)
      if (sourceModel()->headerData(c, Qt::Horizontal).toString().compare(name, Qt::CaseInsensitive) == 0) column = c;
    bool number = false;
    const double value = match.captured(3).toDouble(&number);
    if (column < 0 || !number) continue;
    terms.push_back({column, match.captured(2), value, {}});
    taken.emplace_back(match.capturedStart(0), match.capturedLength(0));
  }
  for (auto it = taken.rbegin(); it != taken.rend(); ++it) rest.remove(it->first, it->second);
  for (const QString& word : rest.split(QRegularExpression(R"(\s+)"), Qt::SkipEmptyParts)) terms.push_back({-1, {}, 0, word});
  return terms;
}

bool PlanFilterModel::holds(const Term& term, int source_row) const {
  const QAbstractItemModel* model = sourceModel();
  if (term.column >= 0) {
    const double v = model->data(model->index(source_row, term.column), PlanTableModel::SortRole).toDouble();
    if (term.op == "=") return v == term.value;
    if (term.op == "!=") return v != term.value;
    if (term.op == "<") return v < term.value;
    if (term.op == "<=") return v <= term.value;
    if (term.op == ">") return v > term.value;
    return v >= term.value;
  }
  for (int c = 0; c < model->columnCount(); ++c)
    if (model->data(model->index(source_row, c)).toString().contains(term.word, Qt::CaseInsensitive)) return true;
  return false;
}

bool PlanFilterModel::filterAcceptsRow(int source_row, const QModelIndex& source_parent) const {
  if (source_parent.isValid()) return false;
  for (const Term& term : terms_)
    if (!holds(term, source_row)) return false;
  return true;
}

}  // namespace loom::gui
