#pragma once
// Where one simulated training step's time goes, as a table for the Plan detail view: one row
// per category of the simulator's Breakdown (forward, backward, recompute, exposed
// communication, pipeline bubble, optimizer), with its time and its share of the step; then the
// communication hidden behind compute (tp-comm-overlap, overlap-grad-reduce,
// overlap-param-gather), which took no step time and so has no share: it is shown below the
// parts of the step, never added to them.
// Display text carries units; SortRole carries the raw number (seconds, or a fraction).

#include "simulator/prediction.hpp"

#include <QAbstractTableModel>

#include <array>

namespace loom::gui {

class BreakdownModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { category, time, share, column_count };
  enum Role { SortRole = Qt::UserRole };

  // The rows, in the order a step's time is usually read: the work itself, then what holds it up,
  // then (outside the step time) what ran hidden beside the work.
  enum Category {
    forward,
    backward,
    recompute,
    tp_comm_exposed,
    pp_comm_exposed,
    pipeline_bubble,
    dp_comm_exposed,
    optimizer,
    tp_comm_hidden,
    dp_comm_hidden,
    category_count
  };
  // The rows before it are the parts the step time sums; those from it on are hidden.
  static constexpr Category first_hidden = tp_comm_hidden;
  static bool isPartOfStepTime(Category which) { return which < first_hidden; }

  explicit BreakdownModel(QObject* parent = nullptr);

  // Shows `breakdown` as shares of `step_time_s` (the prediction's step time, which the parts sum
  // to), and its hidden communication beside them.
  void setBreakdown(const sim::Breakdown& breakdown, double step_time_s);
  void clear();

  double stepTimeSeconds() const { return step_time_s_; }
  double seconds(Category which) const { return seconds_[size_t(which)]; }
  static QString categoryName(Category which);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation,
                      int role = Qt::DisplayRole) const override;

 private:
  bool has_breakdown_ = false;
  double step_time_s_ = 0;
  std::array<double, category_count> seconds_{};
};

// "12.34 ms", or "1.234 s" from a second up: the unit the timeline and the header use too.
QString duration_text(double seconds);

}  // namespace loom::gui
