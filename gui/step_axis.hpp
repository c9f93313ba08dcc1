#pragma once
// The step axis of the Execute and Runs charts: whole steps only, ticks at 1, 2 or 5 × 10^k so
// that labels never show a fractional or repeated step.

#include <QtCharts/QValueAxis>

#include <algorithm>
#include <cmath>

namespace loom::gui {

inline void set_step_axis_range(QValueAxis* axis, double first_step, double last_step) {
  last_step = std::max(last_step, first_step + 1);
  const double raw_interval = (last_step - first_step) / 6.0;
  const double decade = std::pow(10.0, std::floor(std::log10(std::max(raw_interval, 1.0))));
  double interval = decade;
  for (const double factor : {1.0, 2.0, 5.0, 10.0})
    if (factor * decade >= raw_interval) {
      interval = factor * decade;
      break;
    }
  axis->setRange(first_step, last_step);
  axis->setTickType(QValueAxis::TicksDynamic);
  axis->setTickAnchor(0);
  axis->setTickInterval(std::max(1.0, interval));
  axis->setLabelFormat(QStringLiteral("%d"));
}

}  // namespace loom::gui
