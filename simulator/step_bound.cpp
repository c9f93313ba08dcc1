#include "simulator/step_bound.hpp"

#include <algorithm>

namespace loom::sim {

double step_time_lower_bound(const StepCosts& costs, int32_t p, int32_t v, int32_t m) {
  const int32_t last = p * v - 1;
  // What rank r does after its last backward, as the event simulation charges it (the wait at
  // the step statistics for other ranks only lengthens it, so leaving it out keeps a lower bound).
  auto own_tail = [&](int32_t r) {
    // With overlap-grad-reduce the last bucket of the rank's first chunk is complete only when
    // its last backward ends: its reduction is always exposed.
    const double last_bucket =
        !costs.has_buckets() || costs.buckets(r).empty() ? 0.0 : costs.buckets(r).back().reduce_s;
    return costs.grad_sync_s[size_t(r)] + last_bucket + costs.optimizer_s[size_t(r)] + costs.step_statistics_s;
  };
  double bound = 0, before = 0, after = 0;  // before/after: forwards/backwards of stages 0 … r−1
  for (int32_t r = 0; r < p; ++r) {
    double work = 0;
    for (int32_t c = 0; c < v; ++c) {
      const int32_t s = c * p + r;
      work += costs.forward[size_t(s)].total_s() + costs.backward[size_t(s)].total_s();
      if (s < last) work += costs.send_s[size_t(s)];      // activation to s + 1
      if (s > 0) work += costs.send_s[size_t(s - 1)];     // gradient to s − 1
    }
    const double chain = r > 0 ? after + own_tail(0) : 0.0;
    bound = std::max(bound, before + double(m) * work + std::max(own_tail(r), chain));
    before += costs.forward[size_t(r)].total_s();
    after += costs.backward[size_t(r)].total_s();
  }
  // The simulation adds the same durations one action at a time, in another order; shave a
  // relative 1e-9 so that rounding never lifts the bound above the simulated time.
  return bound * (1.0 - 1e-9);
}

}  // namespace loom::sim
