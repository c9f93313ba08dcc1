#pragma once
// Shared by the CPU kernel tests: random inputs, error measures, central finite differences and
// conversions between Tensors and double vectors.


#include "executor/kernels/kernels.hpp"

#include "core/error.hpp"
#include "executor/kernels/cpu/cpu_math.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <vector>


namespace loom::exec::kernel_testing {


using Vec = std::vector<double>;
constexpr double kGradientTolerance = 1e-6;  // finite differences vs backward, double
constexpr double kFloatTolerance = 1e-5;     // float Kernels vs double templates

inline Vec random_vector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  Vec v(n);
  for (double& x : v) x = uniform(rng);
  return v;
}

inline std::vector<int32_t> random_tokens(size_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> uniform(0, vocab - 1);
  std::vector<int32_t> tokens(n);
  for (int32_t& t : tokens) t = uniform(rng);
  return tokens;
}

// ‖a − b‖∞ / ‖b‖∞: relative to the result's scale, so elements near zero do not dominate.
inline double relative_error(const Vec& a, const Vec& b) {
  EXPECT_EQ(a.size(), b.size());
  double difference = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference = std::max(difference, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return difference / std::max(scale, 1e-300);
}

inline double dot(const Vec& a, const Vec& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

// Checks `analytic` against central differences of loss() in every element of x.
inline void expect_gradient(Vec& x, const std::function<double()>& loss, const Vec& analytic) {
  const double h = 1e-5;
  Vec numeric(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    numeric[i] = (up - loss()) / (2 * h);
    x[i] = saved;
  }
  EXPECT_LE(relative_error(analytic, numeric), kGradientTolerance);
}

inline Tensor to_tensor(const Vec& v, std::vector<int64_t> shape) {
  Tensor t(std::move(shape), ElementType::f32, Device::cpu);
  EXPECT_EQ(size_t(t.numel()), v.size());
  std::transform(v.begin(), v.end(), t.data<float>(), [](double x) { return float(x); });
  return t;
}
inline Tensor to_tensor(const std::vector<int32_t>& v) {
  Tensor t({int64_t(v.size())}, ElementType::i32, Device::cpu);
  std::copy(v.begin(), v.end(), t.data<int32_t>());
  return t;
}
inline Vec to_vec(const Tensor& t) {
  return Vec(t.data<float>(), t.data<float>() + t.numel());
}

inline void expect_float_close(const Tensor& actual, const Vec& expected) {
  EXPECT_LE(relative_error(to_vec(actual), expected), kFloatTolerance) << actual.shape_string();
}

class CpuKernelsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
};

}  // namespace loom::exec::kernel_testing
