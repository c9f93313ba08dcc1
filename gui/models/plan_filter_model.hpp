#pragma once
// Sorting and filtering of the Results table. The filter is what a user types to narrow a few
// hundred plans: space-separated terms, all of which must hold —
//   tp=2  pp>=4  mbs<4  "step time<=2"  a column's raw value against a number (= != < <= > >=)
//   interleaved  full  …                any other word, matched in any cell's text
// Numeric comparisons use the model's SortRole (seconds, bytes, fractions), written with the
// column's header name; "step time<1.5" means 1.5 s. A term that names no column is a word.

#include <QSortFilterProxyModel>

#include <vector>

namespace loom::gui {

class PlanFilterModel : public QSortFilterProxyModel {
  Q_OBJECT
 public:
  explicit PlanFilterModel(QObject* parent = nullptr);

  void setFilterExpression(const QString& expression);
  QString filterExpression() const { return expression_; }

 protected:
  bool filterAcceptsRow(int source_row, const QModelIndex& source_parent) const override;

 private:
  struct Term {
    int column = -1;  // -1: a word matched anywhere
    QString op;       // "=", "!=", "<", "<=", ">", ">="
    double value = 0;
    QString word;
  };
  std::vector<Term> parse(const QString& expression) const;
  bool holds(const Term& term, int source_row) const;

  QString expression_;
  std::vector<Term> terms_;
};

}  // namespace loom::gui
