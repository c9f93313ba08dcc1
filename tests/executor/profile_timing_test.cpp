// The profile's timing rules: the median and spread it records, and how many repeats a call gets.

#include "executor/profile/timing.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace loom::exec::profile {
namespace {

TEST(ProfileTiming, MedianAndSpreadOfTheRepeats) {
  const Timing odd = summarize({3.0, 1.0, 2.0});
  EXPECT_DOUBLE_EQ(odd.median_s, 2.0);
  EXPECT_DOUBLE_EQ(odd.spread, 1.0);  // (3 − 1) / 2
  const Timing even = summarize({4.0, 1.0, 2.0, 3.0});
  EXPECT_DOUBLE_EQ(even.median_s, 2.5);
  EXPECT_DOUBLE_EQ(even.spread, 3.0 / 2.5);
}

TEST(ProfileTiming, ShortCallsRepeatToTheMinimumTimeLongOnesStopAtTheCap) {
  const TimingPolicy policy;  // ≥ 5 repeats and ≥ 20 ms, at most 50 repeats or 0.5 s
  EXPECT_EQ(planned_repeats(0.010, policy), 5);   // 5 repeats reach 20 ms
  EXPECT_EQ(planned_repeats(0.001, policy), 20);  // 20 ms needs 20
  EXPECT_EQ(planned_repeats(1e-6, policy), 50);   // capped
  EXPECT_EQ(planned_repeats(0.2, policy), 3);     // 0.6 s passes the 0.5 s cap
  EXPECT_EQ(planned_repeats(2.0, policy), 1);     // one call is already past it
}

TEST(ProfileTiming, TimeCallWarmsUpThenRepeats) {
  int calls = 0;
  TimingPolicy policy;
  policy.min_total_s = 0;
  policy.cold_caches = false;
  // The warm-up call is slow and the timed ones are not: the median leaves it out, so it is
  // below the warm-up's sleep (a sleep lasts at least what it asks; the timed calls do nothing).
  constexpr double kWarmUpS = 0.2;
  const Timing t = time_call(
      [&] {
        if (calls++ == 0) std::this_thread::sleep_for(std::chrono::duration<double>(kWarmUpS));
      },
      policy);
  EXPECT_EQ(calls, 1 + policy.min_repeats);
  EXPECT_LT(t.median_s, kWarmUpS);
}

TEST(ProfileTiming, TimeCallMeasuresWhatTheCallTakes) {
  TimingPolicy policy;
  policy.min_total_s = 0;
  policy.cold_caches = false;
  // A sleep lasts at least what it asks for: a lower bound that holds on any machine.
  static constexpr double kCallS = 0.003;
  const Timing t = time_call([] { std::this_thread::sleep_for(std::chrono::duration<double>(kCallS)); }, policy);
  EXPECT_GE(t.median_s, kCallS);
  EXPECT_GE(t.spread, 0.0);
}

}  // namespace
}  // namespace loom::exec::profile
