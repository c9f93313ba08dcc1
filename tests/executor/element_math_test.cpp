// The per-element formulas the CUDA kernels share with the host (executor/kernels/element_math.hpp)
// against the CPU kernels, the reference: run here, on any machine, so a GPU kernel built on a
// formula that drifts from the CPU's fails without a GPU. Also the bf16 conversions both sides use.

#include "executor/kernels/element_math.hpp"
#include "executor/bfloat16.hpp"
#include "executor/kernels/kernels.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numbers>
#include <random>
#include <vector>

namespace loom::exec {
namespace {

Tensor host_tensor(const std::vector<float>& values) {
  Tensor t({int64_t(values.size())}, ElementType::f32, Device::cpu);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

std::vector<float> values_of(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

std::vector<float> uniform(size_t n, float low, float high, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> distribution(low, high);
  std::vector<float> v(n);
  for (float& x : v) x = distribution(rng);
  return v;
}

// |actual − expected| within `relative` of the expected magnitude (at least of 1, so values near
// zero are held to an absolute bound of the same size).
void expect_close(float expected, float actual, float relative, size_t index) {
  EXPECT_NEAR(expected, actual, relative * std::max(1.0f, std::abs(expected)))
      << "element " << index;
}

uint32_t float_bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}
float from_bits(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

class ElementMathTest : public ::testing::Test {
 protected:
  std::unique_ptr<Kernels> cpu = make_cpu_kernels(1);
};

TEST_F(ElementMathTest, GeluForwardAndBackwardMatchTheCpuKernels) {
  const std::vector<float> x = uniform(4096, -6.0f, 6.0f, 1);
  const std::vector<float> dy = uniform(x.size(), -2.0f, 2.0f, 2);
  Tensor y({int64_t(x.size())}, ElementType::f32, Device::cpu);
  Tensor dx({int64_t(x.size())}, ElementType::f32, Device::cpu);
  cpu->gelu_forward(host_tensor(x), y);
  cpu->gelu_backward(host_tensor(dy), host_tensor(x), dx);
  const std::vector<float> cpu_y = values_of(y), cpu_dx = values_of(dx);
  // The CPU's vectorised tanh is an approximation good to about 1e-5; the formula itself is pinned
  // by the double-precision evaluation below.
  for (size_t i = 0; i < x.size(); ++i) {
    expect_close(cpu_y[i], gelu_tanh(x[i]), 1e-5f, i);
    expect_close(cpu_dx[i], dy[i] * gelu_tanh_derivative(x[i]), 1e-5f, i);
  }
}

TEST_F(ElementMathTest, GeluIsTheTanhApproximationInDouble) {
  for (float xf : uniform(1024, -8.0f, 8.0f, 10)) {
    const double x = xf, s = std::sqrt(2.0 / std::numbers::pi), c = 0.044715;
    const double t = std::tanh(s * (x + c * x * x * x));
    expect_close(float(0.5 * x * (1 + t)), gelu_tanh(xf), 1e-6f, 0);
    expect_close(float(0.5 * (1 + t) + 0.5 * x * (1 - t * t) * s * (1 + 3 * c * x * x)),
                 gelu_tanh_derivative(xf), 1e-6f, 0);
  }
}

TEST_F(ElementMathTest, GeluDerivativeIsTheSlopeOfGelu) {
  for (float x : uniform(256, -5.0f, 5.0f, 3)) {
    const float h = 1e-2f;
    const float slope = (gelu_tanh(x + h) - gelu_tanh(x - h)) / (2 * h);
    EXPECT_NEAR(slope, gelu_tanh_derivative(x), 2e-4f) << "x " << x;
  }
}

TEST_F(ElementMathTest, AdamWUpdateMatchesTheCpuKernels) {
  const size_t n = 2048;
  const std::vector<float> master = uniform(n, -1.0f, 1.0f, 4);
  const std::vector<float> gradient = uniform(n, -0.1f, 0.1f, 5);
  const std::vector<float> m = uniform(n, -0.05f, 0.05f, 6);
  const std::vector<float> v = uniform(n, 1e-6f, 1e-2f, 7);
  for (int64_t step : {int64_t(1), int64_t(3), int64_t(1000)}) {
    const AdamWSettings settings{3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, step};
    Tensor cpu_master = host_tensor(master), cpu_m = host_tensor(m), cpu_v = host_tensor(v);
    Tensor working({int64_t(n)}, ElementType::bf16, Device::cpu);
    cpu->adamw(cpu_master, host_tensor(gradient), cpu_m, cpu_v, settings, &working);
    const AdamWCoefficients coefficients = adamw_coefficients(settings);
    size_t moved = 0;
    for (size_t i = 0; i < n; ++i) {
      float p = master[i], mi = m[i], vi = v[i];
      adamw_update(p, gradient[i], mi, vi, coefficients);
      expect_close(cpu_m.data<float>()[i], mi, 1e-6f, i);
      expect_close(cpu_v.data<float>()[i], vi, 1e-6f, i);
      expect_close(cpu_master.data<float>()[i], p, 1e-6f, i);
      EXPECT_EQ(working.data<uint16_t>()[i], float_to_bf16_bits(cpu_master.data<float>()[i]))
          << "element " << i;
      moved += p != master[i];
    }
    EXPECT_GT(moved, n * 99 / 100) << "step " << step;
  }
}

// Rows of ordinary values and rows whose mean is large against their spread, where a one-pass
// E[x²] − E[x]² would cancel; the CPU kernel takes two passes over each row.
TEST_F(ElementMathTest, LayerNormMomentsMatchTheSavedStatistics) {
  const int64_t rows = 6, cols = 1000;
  const float eps = 1e-5f;
  std::vector<float> x = uniform(size_t(rows * cols), -2.0f, 2.0f, 8);
  for (int64_t c = 0; c < cols; ++c) {
    x[size_t(4 * cols + c)] += 1000.0f;
    x[size_t(5 * cols + c)] = x[size_t(5 * cols + c)] * 0.5f - 300.0f;
  }
  Tensor input = host_tensor(x).reshaped({rows, cols});
  Tensor gamma = host_tensor(std::vector<float>(size_t(cols), 1.0f));
  Tensor beta = host_tensor(std::vector<float>(size_t(cols), 0.0f));
  Tensor y({rows, cols}, ElementType::f32, Device::cpu);
  Tensor mean({rows}, ElementType::f32, Device::cpu), rstd({rows}, ElementType::f32, Device::cpu);
  cpu->layernorm_forward(input, gamma, beta, eps, y, mean, rstd);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x.data() + r * cols;
    RowMoments whole;
    for (int64_t c = 0; c < cols; ++c) whole = moments_add(whole, row[c]);
    // As threads share a row: 7 strided parts, merged pairwise.
    std::vector<RowMoments> parts(7);
    for (int64_t c = 0; c < cols; ++c)
      parts[size_t(c % 7)] = moments_add(parts[size_t(c % 7)], row[c]);
    RowMoments merged = moments_merge(
        moments_merge(moments_merge(parts[0], parts[1]), moments_merge(parts[2], parts[3])),
        moments_merge(moments_merge(parts[4], parts[5]), parts[6]));
    for (const RowMoments& s : {whole, merged}) {
      EXPECT_EQ(s.count, float(cols));
      EXPECT_NEAR(mean.data<float>()[r], s.mean, 4e-6f * std::max(1.0f, std::abs(s.mean)))
          << "row " << r;
      EXPECT_NEAR(rstd.data<float>()[r], moments_rstd(s, eps), 1e-4f * rstd.data<float>()[r])
          << "row " << r;
    }
  }
  EXPECT_EQ(moments_merge(RowMoments{}, moments_add(RowMoments{}, 2.0f)).mean, 2.0f);
}

// Softmax partials of chunks of a row, merged in two orders, against the CPU's cross-entropy
// partials (max and Σ exp(x − max) in one piece) and a direct log-sum-exp in double.
TEST_F(ElementMathTest, SoftmaxMergeMatchesTheCpuKernelsAndADirectLogSumExp) {
  const int64_t rows = 5, cols = 777;
  std::vector<float> logits = uniform(size_t(rows * cols), -20.0f, 20.0f, 9);
  Tensor targets({rows}, ElementType::i32, Device::cpu);
  for (int64_t r = 0; r < rows; ++r) targets.data<int32_t>()[r] = int32_t(r * 3);
  Tensor row_max({rows}, ElementType::f32, Device::cpu),
      sum_exp({rows}, ElementType::f32, Device::cpu);
  Tensor target_logit({rows}, ElementType::f32, Device::cpu);
  cpu->cross_entropy_partials(host_tensor(logits).reshaped({rows, cols}), targets, 0, row_max,
                              sum_exp, target_logit);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits.data() + r * cols;
    double max = -std::numeric_limits<double>::infinity(), direct = 0;
    for (int64_t c = 0; c < cols; ++c) max = std::max(max, double(row[c]));
    for (int64_t c = 0; c < cols; ++c) direct += std::exp(double(row[c]) - max);
    const double log_sum_exp = max + std::log(direct);

    std::vector<SoftmaxPartial> chunks(10);
    for (int64_t c = 0; c < cols; ++c)
      chunks[size_t(c * 10 / cols)] = softmax_add(chunks[size_t(c * 10 / cols)], row[c]);
    SoftmaxPartial forward, backward;
    for (size_t i = 0; i < chunks.size(); ++i) {
      forward = softmax_merge(forward, chunks[i]);
      backward = softmax_merge(chunks[chunks.size() - 1 - i], backward);
    }
    for (const SoftmaxPartial& s : {forward, backward}) {
      EXPECT_EQ(s.max, row_max.data<float>()[r]) << "row " << r;
      EXPECT_NEAR(s.sum, sum_exp.data<float>()[r], 1e-5f * sum_exp.data<float>()[r]) << "row " << r;
      EXPECT_NEAR(double(s.max) + std::log(double(s.sum)), log_sum_exp,
                  1e-6 * std::abs(log_sum_exp))
          << "row " << r;
    }
  }
}

TEST_F(ElementMathTest, SoftmaxPartialsOfNothingMergeWithoutNaN) {
  const SoftmaxPartial empty;
  const SoftmaxPartial both = softmax_merge(empty, empty);
  EXPECT_EQ(both.max, -INFINITY);
  EXPECT_EQ(both.sum, 0.0f);
  const SoftmaxPartial masked = softmax_add(empty, -INFINITY);
  EXPECT_EQ(masked.sum, 0.0f);
  const SoftmaxPartial one = softmax_add(empty, 3.0f);
  EXPECT_EQ(one.max, 3.0f);
  EXPECT_EQ(one.sum, 1.0f);
  EXPECT_EQ(softmax_merge(one, empty).sum, 1.0f);
  EXPECT_EQ(softmax_merge(empty, one).sum, 1.0f);
  EXPECT_FLOAT_EQ(softmax_add(one, 3.0f - std::log(3.0f)).sum, 1.0f + 1.0f / 3.0f);
}

TEST(Bfloat16Test, EveryFiniteAndInfiniteValueRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xffffu; ++bits) {
    const float value = bf16_bits_to_float(uint16_t(bits));
    EXPECT_EQ(float_bits(value), bits << 16);
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(value)))) << std::hex << bits;
    } else {
      EXPECT_EQ(float_to_bf16_bits(value), uint16_t(bits)) << std::hex << bits;
    }
  }
}

TEST(Bfloat16Test, RoundsToNearestWithTiesToEven) {
  const float one = 1.0f;                                    // 0x3f80; a bf16 step at 1 is 2⁻⁷
  EXPECT_EQ(float_to_bf16_bits(one + 0x1p-8f), 0x3f80);      // halfway, 0x3f80 is even: down
  EXPECT_EQ(float_to_bf16_bits(one + 3 * 0x1p-8f), 0x3f82);  // halfway, 0x3f82 is even: up
  EXPECT_EQ(float_to_bf16_bits(one + 0x1p-8f + 0x1p-20f), 0x3f81);  // just past halfway: up
  EXPECT_EQ(float_to_bf16_bits(one + 0x1p-8f - 0x1p-20f), 0x3f80);  // just short of it: down
  EXPECT_EQ(float_to_bf16_bits(-(one + 3 * 0x1p-8f)), 0xbf82);
  EXPECT_EQ(float_to_bf16_bits(from_bits(0x3f80ffffu)), 0x3f81);
  EXPECT_EQ(float_to_bf16_bits(from_bits(0x007f8000u)),
            0x0080);  // a subnormal rounds up into the normals
  EXPECT_EQ(float_to_bf16_bits(from_bits(0x00000001u)), 0x0000);
}

TEST(Bfloat16Test, KeepsInfinitiesAndNaNs) {
  EXPECT_EQ(float_to_bf16_bits(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(float_to_bf16_bits(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(float_to_bf16_bits(std::numeric_limits<float>::max()),
            0x7f80);  // past bf16's largest: overflows
  EXPECT_EQ(float_to_bf16_bits(from_bits(0x7f7f7fffu)),
            0x7f7f);  // just below halfway: stays finite
  // A NaN whose payload lies only in the bits that are dropped must not become infinity.
  for (uint32_t nan : {0x7f800001u, 0xff800001u, 0x7fc00000u, 0x7fffffffu}) {
    const uint16_t bits = float_to_bf16_bits(from_bits(nan));
    EXPECT_TRUE(std::isnan(bf16_bits_to_float(bits))) << std::hex << nan;
    EXPECT_EQ(bits & 0x8000u, (nan >> 16) & 0x8000u) << std::hex << nan;  // the sign is kept
  }
}

}  // namespace
}  // namespace loom::exec
