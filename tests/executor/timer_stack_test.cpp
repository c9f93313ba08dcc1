// TimerStack: time per category from nested scopes, on a fake clock so that every total is exact;
// and TensorParallel's use of it (a recompute's collectives are recompute, others tp_comm).

#include "executor/timers/timer_stack.hpp"

#include "executor/comm/communicator.hpp"
#include "executor/model/tensor_parallel.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace loom::exec {
namespace {

// A clock that moves only when the test says so.
struct FakeClock {
  double now_s = 100.0;  // not zero: totals must not depend on where the clock starts
  TimerStack::Clock clock() {
    return [this] { return now_s; };
  }
};

void expect_totals(const TimerStack& timers, const std::array<double, kCategoryCount>& expected) {
  for (size_t c = 0; c < kCategoryCount; ++c)
    EXPECT_EQ(timers[Category(c)], expected[c]) << to_string(Category(c));
}

TEST(TimerStack, OneScopeCountsItsLifetime) {
  FakeClock time;
  TimerStack timers(time.clock());
  {
    ScopedTimer timer(timers, Category::pp_comm);
    time.now_s += 3;
  }
  expect_totals(timers, {0, 0, 0, 0, 3, 0, 0});
}

TEST(TimerStack, TimeOutsideEveryScopeCountsNowhere) {
  FakeClock time;
  TimerStack timers(time.clock());
  time.now_s += 5;
  {
    ScopedTimer timer(timers, Category::dp_comm);
    time.now_s += 2;
  }
  time.now_s += 7;
  expect_totals(timers, {0, 0, 0, 0, 0, 2, 0});
}

TEST(TimerStack, NestedScopeIsSubtractedFromItsParent) {
  // A forward of 10 s with a 3 s collective inside: 7 s forward, 3 s tp_comm.
  FakeClock time;
  TimerStack timers(time.clock());
  {
    ScopedTimer forward(timers, Category::forward);
    time.now_s += 2;
    {
      ScopedTimer collective(timers, Category::tp_comm);
      time.now_s += 3;
    }
    time.now_s += 5;
  }
  expect_totals(timers, {7, 0, 0, 3, 0, 0, 0});
}

TEST(TimerStack, ThreeLevelsEachKeepOnlyTheirOwnTime) {
  // A backward (20 s) holding a recompute (8 s) that holds a collective (1 s) and, after it, a
  // tensor-parallel collective of the backward itself (2 s).
  FakeClock time;
  TimerStack timers(time.clock());
  {
    ScopedTimer backward(timers, Category::backward);
    time.now_s += 1;
    {
      ScopedTimer recompute(timers, Category::recompute);
      time.now_s += 3;
      {
        ScopedTimer collective(timers, Category::tp_comm);
        time.now_s += 1;
      }
      time.now_s += 4;
    }
    {
      ScopedTimer collective(timers, Category::tp_comm);
      time.now_s += 2;
    }
    time.now_s += 9;
  }
  expect_totals(timers, {0, 20 - 8 - 2, 8 - 1, 1 + 2, 0, 0, 0});
}

TEST(TimerStack, ScopeOfTheSameCategoryNestedKeepsTheTimeThere) {
  FakeClock time;
  TimerStack timers(time.clock());
  {
    ScopedTimer outer(timers, Category::recompute);
    time.now_s += 1;
    {
      ScopedTimer inner(timers, Category::recompute);
      time.now_s += 2;
    }
  }
  expect_totals(timers, {0, 0, 3, 0, 0, 0, 0});
}

TEST(TimerStack, SiblingScopesAddUp) {
  FakeClock time;
  TimerStack timers(time.clock());
  for (int i = 0; i < 4; ++i) {
    ScopedTimer timer(timers, Category::optimizer);
    time.now_s += 0.25;  // exact in binary: the sum is exactly 1
  }
  expect_totals(timers, {0, 0, 0, 0, 0, 0, 1});
}

TEST(TimerStack, ResetZeroesTotalsAndOpenScopesCountFromThere) {
  FakeClock time;
  TimerStack timers(time.clock());
  {
    ScopedTimer forward(timers, Category::forward);
    time.now_s += 4;
    timers.reset();
    expect_totals(timers, {0, 0, 0, 0, 0, 0, 0});
    time.now_s += 6;
  }
  expect_totals(timers, {6, 0, 0, 0, 0, 0, 0});
}

TEST(TimerStack, InnermostIsTheLastOpenScope) {
  FakeClock time;
  TimerStack timers(time.clock());
  EXPECT_EQ(timers.innermost(), std::nullopt);
  {
    ScopedTimer backward(timers, Category::backward);
    EXPECT_EQ(timers.innermost(), Category::backward);
    {
      ScopedTimer recompute(timers, Category::recompute);
      EXPECT_EQ(timers.innermost(), Category::recompute);
    }
    EXPECT_EQ(timers.innermost(), Category::backward);
  }
  EXPECT_EQ(timers.innermost(), std::nullopt);
}

TEST(TimerStack, AScopeLeftByAnExceptionIsClosed) {
  FakeClock time;
  TimerStack timers(time.clock());
  try {
    ScopedTimer timer(timers, Category::forward);
    time.now_s += 2;
    throw std::runtime_error("stop");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(timers.innermost(), std::nullopt);
  time.now_s += 5;  // after the scope: counted nowhere
  expect_totals(timers, {2, 0, 0, 0, 0, 0, 0});
}

TEST(TimeCategory, NamesAreThoseOfTheRunStatistics) {
  EXPECT_EQ(to_string(Category::forward), "forward");
  EXPECT_EQ(to_string(Category::backward), "backward");
  EXPECT_EQ(to_string(Category::recompute), "recompute");
  EXPECT_EQ(to_string(Category::tp_comm), "tp_comm");
  EXPECT_EQ(to_string(Category::pp_comm), "pp_comm");
  EXPECT_EQ(to_string(Category::dp_comm), "dp_comm");
  EXPECT_EQ(to_string(Category::optimizer), "optimizer");
  EXPECT_EQ(to_string(Category::dp_wait), "dp_wait");
  EXPECT_EQ(to_string(Category::tp_wait), "tp_wait");
}

// A two-rank group in one process whose every collective takes one second of the fake clock and
// leaves the data as it is: enough to see where TensorParallel puts the time.
class OneSecondCollectives final : public Communicator {
 public:
  explicit OneSecondCollectives(FakeClock& time) : time_(time) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  // The wait for the slowest rank before each collective: half a second.
  void barrier() override { time_.now_s += 0.5; }
  void idle_barrier() override { unexpected(); }
  void all_reduce_sum(double*, size_t) override { unexpected(); }
  std::unique_ptr<Communicator> split(int, int) override {
    unexpected();
    return nullptr;
  }

 protected:
  void run_all_reduce(void*, size_t, ElementType, ReduceOp) override { time_.now_s += 1; }
  void run_all_gather(const void*, void*, size_t, ElementType) override { time_.now_s += 1; }
  void run_reduce_scatter(const void*, void*, size_t, ElementType, ReduceOp) override { time_.now_s += 1; }
  void run_broadcast(void*, size_t, ElementType, int) override { unexpected(); }
  void run_send(const void*, size_t, ElementType, int, int) override { unexpected(); }
  void run_recv(void*, size_t, ElementType, int, int) override { unexpected(); }
  std::unique_ptr<PendingCollective> run_start_all_reduce(void*, size_t, ElementType, ReduceOp) override {
    return unexpected_start();
  }
  std::unique_ptr<PendingCollective> run_start_reduce_scatter(void*, std::span<const size_t>, ElementType,
                                                              ReduceOp) override {
    return unexpected_start();
  }
  std::unique_ptr<PendingCollective> run_start_all_gather(void*, std::span<const size_t>, ElementType) override {
    return unexpected_start();
  }

 private:
  static void unexpected() { ADD_FAILURE() << "TensorParallel made a call it does not make"; }
  static std::unique_ptr<PendingCollective> unexpected_start() {
    unexpected();
    return nullptr;
  }
  FakeClock& time_;
};

TEST(TensorParallelTiming, CollectivesAreTpCommExceptInsideARecompute) {
  FakeClock time;
  TimerStack timers(time.clock());
  OneSecondCollectives group(time);
  TensorParallel tp(&group, /*sequence_parallel=*/true, timers);
  Tensor rows({2, 4}, ElementType::f32, Device::cpu);
  {
    ScopedTimer forward(timers, Category::forward);
    time.now_s += 5;
    tp.enter(rows);  // all-gather: 1 s
    {
      ScopedTimer recompute(timers, Category::recompute);
      time.now_s += 2;
      tp.leave(Tensor({4, 4}, ElementType::f32, Device::cpu));  // reduce-scatter inside the recompute: 1 s of recompute
    }
    tp.all_reduce(rows);  // 1 s
  }
  // Each collective's wait for the slowest rank (0.5 s) is tp_wait, apart from its transfer, but
  // inside a recompute recompute like the collective.
  expect_totals(timers, {5, 0, 3.5, 2, 0, 0, 0, 0, 1});
  // Without the barriers (loom-exec run --no-wait-barriers) the transfers alone, as before.
  FakeClock time2;
  TimerStack plain(time2.clock());
  plain.set_separates_waits(false);
  OneSecondCollectives group2(time2);
  TensorParallel tp2(&group2, /*sequence_parallel=*/true, plain);
  {
    ScopedTimer forward(plain, Category::forward);
    tp2.enter(rows);
  }
  expect_totals(plain, {0, 0, 0, 1, 0, 0, 0, 0, 0});
}

}  // namespace
}  // namespace loom::exec
