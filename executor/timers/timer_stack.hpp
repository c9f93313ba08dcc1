#pragma once
// A rank's time per category, measured by nested scopes. Time inside a scope goes to the scope's
// category, except the time of the scopes nested in it, which goes to theirs: a forward that
// runs tensor-parallel collectives is forward for its compute and tp_comm for its collectives,
// and nobody subtracts one from the other by hand. Each moment of a scope's life is thus counted
// once, in the innermost scope open at that moment.
//
// A folder of its own, below model/ (whose collectives it times) and engine/ (which times the
// actions around them), so that both include it and model/ never includes engine/.

#include "executor/timers/time_category.hpp"

#include <array>
#include <functional>
#include <optional>
#include <vector>

namespace loom::exec {

// Seconds on the steady clock: the clock TimerStack reads unless given another.
double steady_clock_seconds();

class TimerStack {
 public:
  // Seconds on a clock that never goes back; tests pass a fake one to assert exact totals.
  using Clock = std::function<double()>;
  explicit TimerStack(Clock clock = steady_clock_seconds);

  // The time spent in `category`'s scopes, less that of the scopes nested in them, since
  // construction or the last reset.
  double operator[](Category category) const { return seconds_[size_t(category)]; }
  // Zeroes every category (after the warm-up steps); scopes open now count from here on.
  void reset();
  // The category of the innermost open scope; nothing when no scope is open.
  std::optional<Category> innermost() const;

  // Whether the engine enters a barrier of a data- or tensor-parallel group before its collective
  // and times it as dp_wait / tp_wait, so that the collective's own category holds the transfer
  // alone and not the wait for the slowest rank. A barrier changes no value, only when ranks
  // proceed; on by default (a run measures), off to compare its cost.
  bool separates_waits() const { return separates_waits_; }
  void set_separates_waits(bool on) { separates_waits_ = on; }

 private:
  friend class ScopedTimer;  // which pairs every open with its close, in reverse order
  void open(Category category);
  void close();
  // Gives the time since the last open, close or reset to the innermost open scope.
  void charge_innermost();

  Clock clock_;
  std::array<double, kCategoryCount> seconds_{};
  std::vector<Category> open_;
  double last_event_s_ = 0;
  bool separates_waits_ = true;
};

// Times its own lifetime in `category` (nested in whatever scope is open).
class ScopedTimer {
 public:
  ScopedTimer(TimerStack& timers, Category category) : timers_(timers) { timers_.open(category); }
  ~ScopedTimer() { timers_.close(); }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  TimerStack& timers_;
};

}  // namespace loom::exec
