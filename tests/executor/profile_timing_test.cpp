// The profile's timing rules: the median and spread it records, and how many repeats a call gets;
// and its random inputs.

#include "executor/bfloat16.hpp"
#include "executor/profile/random_tensors.hpp"
#include "executor/profile/timing.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
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

// A backend's calls are timed by the same rule as host calls (the CPU's synchronize() returns
// at once; the CUDA one's is what makes the clock see its kernels).
TEST(ProfileTiming, KernelTimerWarmsUpThenRepeats) {
  const std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  TimingPolicy policy;
  policy.min_total_s = 0;
  policy.cold_caches = false;
  KernelTimer timer(*kernels, policy);
  int calls = 0;
  const Timing t = timer([&] { ++calls; });
  EXPECT_EQ(calls, 1 + policy.min_repeats);
  EXPECT_GE(t.median_s, 0.0);
}

// Inputs lie in [-1, 1) on the kernels' device, in the type asked for; one seed, one sequence.
TEST(ProfileRandomTensors, UniformValuesOfEitherTypeFromAFixedSeed) {
  const std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  RandomTensors random(*kernels), again(*kernels);
  const Tensor f32 = random.uniform({1000}), same = again.uniform({1000});
  ASSERT_EQ(f32.type(), ElementType::f32);
  ASSERT_EQ(f32.device(), kernels->device());
  for (int64_t i = 0; i < f32.numel(); ++i) {
    EXPECT_GE(f32.data<float>()[i], -1.0f);
    EXPECT_LT(f32.data<float>()[i], 1.0f);
    EXPECT_EQ(f32.data<float>()[i], same.data<float>()[i]);
  }
  const Tensor bf16 = random.uniform({1000}, ElementType::bf16);
  ASSERT_EQ(bf16.type(), ElementType::bf16);
  for (int64_t i = 0; i < bf16.numel(); ++i) EXPECT_LE(std::abs(bf16_bits_to_float(bf16.data<uint16_t>()[i])), 1.0f);
  const Tensor tokens = random.tokens(1000, 7);
  for (int64_t i = 0; i < tokens.numel(); ++i) {
    EXPECT_GE(tokens.data<int32_t>()[i], 0);
    EXPECT_LT(tokens.data<int32_t>()[i], 7);
  }
}

}  // namespace
}  // namespace loom::exec::profile
