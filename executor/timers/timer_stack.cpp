#include "executor/timers/timer_stack.hpp"

#include <cassert>
#include <chrono>

namespace loom::exec {

double steady_clock_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

TimerStack::TimerStack(Clock clock) : clock_(std::move(clock)), last_event_s_(clock_()) {}

void TimerStack::reset() {
  seconds_.fill(0.0);
  last_event_s_ = clock_();
}

std::optional<Category> TimerStack::innermost() const {
  if (open_.empty()) return std::nullopt;
  return open_.back();
}

void TimerStack::open(Category category) {
  charge_innermost();
  open_.push_back(category);
}

void TimerStack::close() {
  assert(!open_.empty() && "TimerStack::close without an open scope");
  charge_innermost();
  open_.pop_back();
}

void TimerStack::charge_innermost() {
  const double now = clock_();
  if (!open_.empty()) seconds_[size_t(open_.back())] += now - last_event_s_;
  last_event_s_ = now;
}

}  // namespace loom::exec
