#pragma once
// What the GPU tests share: skipping without a device (with the reason), and moving random host
// values onto the CUDA backend in f32 or bf16 and back.

#include "executor/bfloat16.hpp"
#include "executor/kernels/backend.hpp"
#include "executor/kernels/kernels.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace loom::exec::gpu_tests {

// GTEST_SKIP()s the calling test when no CUDA device can be used, printing why.
#define LOOM_REQUIRE_CUDA_DEVICE()                                                 \
  do {                                                                             \
    std::string loom_reason;                                                       \
    if (!::loom::exec::cuda_device_usable(&loom_reason))                           \
      GTEST_SKIP() << "no CUDA device: " << loom_reason;                           \
  } while (false)

using Values = std::vector<float>;

inline Values random_values(size_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  Values v(count);
  for (float& x : v) {
    x = normal(engine);
    if (x == 0.0f) x = scale * 1e-3f;  // never zeros: a kernel that writes nothing must fail
  }
  return v;
}

// The values a bf16 tensor can hold nearest to `v`: both backends get exactly these inputs.
inline Values rounded_to_bf16(Values v) {
  for (float& x : v) x = bf16_bits_to_float(float_to_bf16_bits(x));
  return v;
}

inline Tensor host_tensor(const Values& v, std::vector<int64_t> shape) {
  Tensor t(std::move(shape), ElementType::f32, Device::cpu);
  EXPECT_EQ(size_t(t.numel()), v.size());
  std::memcpy(t.data<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

// `v` on the kernels' device as `type` (f32 or bf16).
inline Tensor on_device(Kernels& k, const Values& v, std::vector<int64_t> shape, ElementType type) {
  Tensor host = host_tensor(v, shape);
  Tensor f32(shape, ElementType::f32, k.device());
  k.copy(host, f32);
  if (type == ElementType::f32) return f32;
  Tensor converted(shape, type, k.device());
  k.cast(f32, converted);
  return converted;
}

inline Tensor int_tensor(Kernels& k, const std::vector<int32_t>& v) {
  Tensor host({int64_t(v.size())}, ElementType::i32, Device::cpu);
  std::memcpy(host.data<int32_t>(), v.data(), v.size() * sizeof(int32_t));
  Tensor t({int64_t(v.size())}, ElementType::i32, k.device());
  k.copy(host, t);
  return t;
}

// An output tensor filled with NaNs first, so that an element a kernel forgets to write fails.
inline Tensor poisoned(Kernels& k, std::vector<int64_t> shape, ElementType type) {
  Tensor host(shape, type, Device::cpu);
  std::memset(host.data<char>(), 0xff, host.bytes());  // all-ones bits: a NaN in f32 and bf16
  Tensor t(shape, type, k.device());
  k.copy(host, t);
  return t;
}

inline Values to_host(Kernels& k, const Tensor& t) {
  Tensor f32 = t;
  if (t.type() != ElementType::f32) {
    f32 = Tensor(t.shape(), ElementType::f32, t.device());
    k.cast(t, f32);
  }
  Tensor host(t.shape(), ElementType::f32, Device::cpu);
  k.copy(f32, host);
  return Values(host.data<float>(), host.data<float>() + host.numel());
}

// ‖a − b‖ / max(‖b‖, tiny), infinite when a holds a NaN or the sizes differ.
inline double normalized_error(const Values& a, const Values& b) {
  if (a.size() != b.size()) return INFINITY;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    diff += double(a[i] - b[i]) * double(a[i] - b[i]);
    norm += double(b[i]) * double(b[i]);
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

}  // namespace loom::exec::gpu_tests
