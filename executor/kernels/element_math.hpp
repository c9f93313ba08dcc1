#pragma once
// The per-element formulas that the CPU reference (kernels/cpu/) and the CUDA kernels must agree
// on, as host+device functions: the CUDA kernels call these, and tests/executor/
// element_math_test.cpp checks them on the host against the CPU kernels, so a formula that drifts
// from the reference fails a test on a machine without a GPU. All in fp32, as both backends
// compute (bf16 values are widened before and rounded after).

#include "executor/bfloat16.hpp"  // LOOM_HOST_DEVICE
#include "executor/kernels/kernels.hpp"

#include <cmath>
#include <cstdint>

namespace loom::exec {

// GELU, tanh approximation (GPT-2): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), associated as
// the CPU kernel does.
LOOM_HOST_DEVICE inline float gelu_tanh(float x) {
  const float scale = 0.7978845608028654f;  // √(2/π)
  const float cubic = 0.044715f;
  return 0.5f * x * (1.0f + tanhf(scale * (x + cubic * (x * x * x))));
}

// d gelu_tanh / dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²), t the tanh above.
LOOM_HOST_DEVICE inline float gelu_tanh_derivative(float x) {
  const float scale = 0.7978845608028654f;
  const float cubic = 0.044715f;
  const float t = tanhf(scale * (x + cubic * (x * x * x)));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * scale * (1.0f + 3.0f * cubic * (x * x));
}

// One AdamW step's per-element constants. The bias corrections are formed in double on the host,
// as the CPU kernel forms them: 1 − β2^step is small early on, where float would lose digits.
struct AdamWCoefficients {
  float beta1 = 0;
  float beta2 = 0;
  float eps = 0;
  float step_size = 0;                 // lr / (1 − β1^step)
  float inverse_sqrt_correction2 = 0;  // 1 / √(1 − β2^step)
  float decay = 1;                     // 1 − lr·wd
};

inline AdamWCoefficients adamw_coefficients(const AdamWSettings& settings) {
  const double correction1 = 1.0 - std::pow(double(settings.beta1), double(settings.step));
  const double correction2 = 1.0 - std::pow(double(settings.beta2), double(settings.step));
  AdamWCoefficients c;
  c.beta1 = settings.beta1;
  c.beta2 = settings.beta2;
  c.eps = settings.eps;
  c.step_size = float(double(settings.lr) / correction1);
  c.inverse_sqrt_correction2 = float(1.0 / std::sqrt(correction2));
  c.decay = 1.0f - settings.lr * settings.weight_decay;
  return c;
}

// PyTorch's AdamW on one element: decoupled decay p·(1 − lr·wd), then the bias-corrected step
// m̂/(√v̂ + eps) with the corrections folded into step_size and inverse_sqrt_correction2.
LOOM_HOST_DEVICE inline void adamw_update(float& parameter, float gradient, float& m, float& v,
                                          const AdamWCoefficients& c) {
  m = c.beta1 * m + (1.0f - c.beta1) * gradient;
  v = c.beta2 * v + (1.0f - c.beta2) * (gradient * gradient);
  parameter =
      parameter * c.decay - c.step_size * m / (sqrtf(v) * c.inverse_sqrt_correction2 + c.eps);
}

// A layer-norm row's running statistics (Welford): count, mean and the sum of squared deviations
// from the mean. Partials of disjoint parts of a row merge exactly (Chan et al.), so threads can
// each take a strided share of a row and combine; unlike E[x²] − E[x]² it does not cancel when
// the mean is large against the spread (which is why the CPU kernel takes two passes).
struct RowMoments {
  float count = 0;
  float mean = 0;
  float m2 = 0;
};

LOOM_HOST_DEVICE inline RowMoments moments_add(RowMoments s, float x) {
  s.count += 1.0f;
  const float delta = x - s.mean;
  s.mean += delta / s.count;
  s.m2 += delta * (x - s.mean);
  return s;
}

LOOM_HOST_DEVICE inline RowMoments moments_merge(RowMoments a, RowMoments b) {
  if (b.count == 0.0f) return a;
  if (a.count == 0.0f) return b;
  const float count = a.count + b.count;
  const float delta = b.mean - a.mean;
  const float b_share = b.count / count;
  return RowMoments{count, a.mean + delta * b_share,
                    a.m2 + b.m2 + delta * delta * (a.count * b_share)};
}

// 1/√(var + eps) with the biased variance, as layernorm_forward saves it.
LOOM_HOST_DEVICE inline float moments_rstd(RowMoments s, float eps) {
  return 1.0f / sqrtf(s.m2 / s.count + eps);
}

// A softmax denominator in pieces: Σ exp(x − max) over some of a row's values, with their max.
// The empty partial is (−∞, 0). Pieces merge in any order (online softmax, FlashAttention), and
// max + log(sum) is the row's log-sum-exp.
struct SoftmaxPartial {
  float max = -INFINITY;
  float sum = 0;
};

// exp(from − to) for to ≥ from: what a sum taken relative to `from` is worth relative to `to`.
// An empty partial's −∞ gives 0 (not exp(−∞ + ∞) = NaN when both are −∞).
LOOM_HOST_DEVICE inline float softmax_rescale(float from, float to) {
  return from == -INFINITY ? 0.0f : expf(from - to);
}

LOOM_HOST_DEVICE inline SoftmaxPartial softmax_merge(SoftmaxPartial a, SoftmaxPartial b) {
  const float max = fmaxf(a.max, b.max);
  return SoftmaxPartial{max,
                        a.sum * softmax_rescale(a.max, max) + b.sum * softmax_rescale(b.max, max)};
}

// One value into a partial: one exp per value, two only when the max moves.
LOOM_HOST_DEVICE inline SoftmaxPartial softmax_add(SoftmaxPartial s, float x) {
  if (x > s.max) return SoftmaxPartial{x, s.sum * softmax_rescale(s.max, x) + 1.0f};
  return SoftmaxPartial{s.max, s.sum + softmax_rescale(x, s.max)};
}

}  // namespace loom::exec
