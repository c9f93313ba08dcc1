#include "simulator/interpolation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace loom::sim {

void LogLogCurve::add(double x, double y) {
  points_.emplace_back(x, y);
  sorted_ = false;
}

void LogLogCurve::sort() const {
  if (sorted_) return;
  std::sort(points_.begin(), points_.end());
  sorted_ = true;
}

double LogLogCurve::operator()(double x) const {
  sort();
  if (points_.size() == 1 || x <= points_.front().first) {
    const auto& [x0, y0] = points_.front();
    return points_.size() == 1 && x > x0 ? y0 * x / x0 : y0;
  }
  if (x >= points_.back().first) {
    // Continue at the largest sample's rate: y/x constant.
    const auto& [x1, y1] = points_.back();
    return y1 * x / x1;
  }
  auto upper = std::upper_bound(points_.begin(), points_.end(), std::make_pair(x, -std::numeric_limits<double>::infinity()));
  const auto& [x1, y1] = *upper;
  const auto& [x0, y0] = *(upper - 1);
  const double w = (std::log(x) - std::log(x0)) / (std::log(x1) - std::log(x0));
  return std::exp(std::log(y0) + w * (std::log(y1) - std::log(y0)));
}

void GemmTable::add(int64_t m, int64_t n, int64_t k, double time_s) {
  const double flops = 2.0 * double(m) * double(n) * double(k);
  samples_.push_back({std::log(double(m)), std::log(double(n)), std::log(double(k)), flops / time_s});
  indexed_ = false;
}

namespace {

std::vector<double> distinct(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end(), [](double a, double b) { return std::abs(a - b) < 1e-9; }),
               values.end());
  return values;
}

size_t index_of(const std::vector<double>& axis, double value) {
  return size_t(std::lower_bound(axis.begin(), axis.end(), value - 1e-9) - axis.begin());
}

// The bracketing cell and weight along one axis, clamped to the grid.
std::pair<size_t, double> bracket(const std::vector<double>& axis, double value) {
  if (axis.size() == 1 || value <= axis.front()) return {0, 0.0};
  if (value >= axis.back()) return {axis.size() - 2, 1.0};
  const size_t upper = size_t(std::upper_bound(axis.begin(), axis.end(), value) - axis.begin());
  const double w = (value - axis[upper - 1]) / (axis[upper] - axis[upper - 1]);
  return {upper - 1, w};
}

}  // namespace

void GemmTable::index() const {
  if (indexed_) return;
  std::vector<double> ms, ns, ks;
  for (const Sample& s : samples_) {
    ms.push_back(s.log_m);
    ns.push_back(s.log_n);
    ks.push_back(s.log_k);
  }
  ms_ = distinct(ms);
  ns_ = distinct(ns);
  ks_ = distinct(ks);
  grid_.assign(ms_.size() * ns_.size() * ks_.size(), -1.0);
  for (const Sample& s : samples_)
    grid_[(index_of(ms_, s.log_m) * ns_.size() + index_of(ns_, s.log_n)) * ks_.size() + index_of(ks_, s.log_k)] =
        s.flops_per_s;
  full_grid_ = std::none_of(grid_.begin(), grid_.end(), [](double v) { return v < 0; });
  indexed_ = true;
}

double GemmTable::grid_throughput(double log_m, double log_n, double log_k) const {
  const auto [im, wm] = bracket(ms_, log_m);
  const auto [in, wn] = bracket(ns_, log_n);
  const auto [ik, wk] = bracket(ks_, log_k);
  double log_sum = 0;
  for (int dm = 0; dm < 2; ++dm)
    for (int dn = 0; dn < 2; ++dn)
      for (int dk = 0; dk < 2; ++dk) {
        const double weight = (dm ? wm : 1 - wm) * (dn ? wn : 1 - wn) * (dk ? wk : 1 - wk);
        if (weight == 0) continue;
        const size_t m = std::min(im + dm, ms_.size() - 1), n = std::min(in + dn, ns_.size() - 1),
                     k = std::min(ik + dk, ks_.size() - 1);
        log_sum += weight * std::log(grid_[(m * ns_.size() + n) * ks_.size() + k]);
      }
  return std::exp(log_sum);
}

double GemmTable::nearest_throughput(double log_m, double log_n, double log_k) const {
  std::vector<std::pair<double, double>> by_distance;
  for (const Sample& s : samples_) {
    const double d2 = (s.log_m - log_m) * (s.log_m - log_m) + (s.log_n - log_n) * (s.log_n - log_n) +
                      (s.log_k - log_k) * (s.log_k - log_k);
    if (d2 < 1e-18) return s.flops_per_s;
    by_distance.emplace_back(d2, s.flops_per_s);
  }
  const size_t nearest = std::min<size_t>(4, by_distance.size());
  std::partial_sort(by_distance.begin(), by_distance.begin() + long(nearest), by_distance.end());
  double weights = 0, log_sum = 0;
  for (size_t i = 0; i < nearest; ++i) {
    const double w = 1.0 / by_distance[i].first;
    weights += w;
    log_sum += w * std::log(by_distance[i].second);
  }
  return std::exp(log_sum / weights);
}

double GemmTable::time_s(double m, double n, double k) const {
  index();
  const double lm = std::log(m), ln = std::log(n), lk = std::log(k);
  const double throughput = full_grid_ ? grid_throughput(lm, ln, lk) : nearest_throughput(lm, ln, lk);
  return 2.0 * m * n * k / throughput;
}

}  // namespace loom::sim
