#pragma once
// Interpolation in measured profile tables. Kernel and communication times span many orders of
// magnitude and follow power laws between regimes (latency-bound, bandwidth-bound), so every
// table is interpolated in log space, never linearly.

#include <cstdint>
#include <vector>

namespace loom::sim {

// y(x) through measured points, piecewise linear in (log x, log y). Beyond the largest x the
// curve continues at the last segment's throughput (time ∝ size: bandwidth-bound); below the
// smallest it stays flat (latency-bound).
class LogLogCurve {
 public:
  void add(double x, double y);
  bool empty() const { return points_.empty(); }
  double operator()(double x) const;

 private:
  void sort() const;
  mutable std::vector<std::pair<double, double>> points_;
  mutable bool sorted_ = true;
};

// GEMM throughput measured at points (m, n, k). When the points form a full grid (every
// combination of the distinct m, n and k values), throughput is interpolated trilinearly in
// (log m, log n, log k) and held constant beyond the grid's edges; otherwise it is an
// inverse-distance-weighted mean over the four nearest points in log space.
class GemmTable {
 public:
  void add(int64_t m, int64_t n, int64_t k, double time_s);
  bool empty() const { return samples_.empty(); }
  double time_s(double m, double n, double k) const;

 private:
  struct Sample {
    double log_m, log_n, log_k, flops_per_s;
  };
  void index() const;
  double grid_throughput(double log_m, double log_n, double log_k) const;
  double nearest_throughput(double log_m, double log_n, double log_k) const;

  std::vector<Sample> samples_;
  mutable bool indexed_ = false;
  mutable bool full_grid_ = false;
  mutable std::vector<double> ms_, ns_, ks_;   // distinct log values, ascending
  mutable std::vector<double> grid_;           // throughput at [i_m][i_n][i_k]
};

}  // namespace loom::sim
