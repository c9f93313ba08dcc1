#pragma once
// Where a rank's time goes, in the categories the simulator predicts (so `loom compare` can set
// them side by side): forward, backward, recompute, tensor-parallel communication, pipeline
// communication (waits included), data-parallel communication, optimizer.

#include <array>
#include <chrono>
#include <string_view>

namespace loom::exec {

enum class Category : uint8_t { forward, backward, recompute, tp_comm, pp_comm, dp_comm, optimizer };
inline constexpr size_t kCategoryCount = 7;
std::string_view to_string(Category category);

class Timers {
 public:
  void add(Category category, double seconds) { seconds_[size_t(category)] += seconds; }
  double operator[](Category category) const { return seconds_[size_t(category)]; }
  void reset() { seconds_.fill(0.0); }

 private:
  std::array<double, kCategoryCount> seconds_{};
};

// Adds the time from construction to destruction to one category.
class ScopedTimer {
 public:
  ScopedTimer(Timers& timers, Category category)
      : timers_(timers), category_(category), started_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() {
    timers_.add(category_, std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  Timers& timers_;
  Category category_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace loom::exec
