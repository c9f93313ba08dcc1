// The CPU kernels Llama adds to GPT-2's: RMSNorm, SwiGLU, rotary positions and the expansion of
// grouped-query attention's key/value groups to the multi-head layout.

#include "executor/kernels/cpu/cpu_math.hpp"
#include "executor/kernels/cpu/eigen_maps.hpp"

#include <cmath>
#include <vector>

namespace loom::exec::cpu {
template <typename T>
void rmsnorm_forward(const T* x, const T* gamma, T eps, T* y, T* rstd, int64_t rows, int64_t cols) {
  ConstArrayMap<T> gamma_map(gamma, cols);
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap<T> x_row(x + r * cols, cols);
    const T row_rstd = T(1) / std::sqrt(x_row.square().mean() + eps);
    ArrayMap<T>(y + r * cols, cols) = x_row * row_rstd * gamma_map;
    rstd[r] = row_rstd;
  }
}

// With x̂ = x·rstd and g = dy·gamma: dx = rstd·(g − x̂·mean(g·x̂)); dgamma += Σ_r dy·x̂.
template <typename T>
void rmsnorm_backward(const T* dy, const T* x, const T* gamma, const T* rstd, T* dx, T* dgamma, int64_t rows,
                      int64_t cols) {
  ConstArrayMap<T> gamma_map(gamma, cols);
  ArrayMap<T> dgamma_map(dgamma, cols);
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap<T> dy_row(dy + r * cols, cols);
    auto x_hat = ConstArrayMap<T>(x + r * cols, cols) * rstd[r];
    auto g = dy_row * gamma_map;
    const T mean_g_x_hat = (g * x_hat).mean();
    dgamma_map += dy_row * x_hat;
    ArrayMap<T>(dx + r * cols, cols) = rstd[r] * (g - x_hat * mean_g_x_hat);
  }
}

// Row by row as Eigen arrays, so that exp is vectorised (a scalar std::exp per element made the
// Llama twin of the benchmark model 15 % slower than GPT-2's at equal FLOPs).
template <typename T>
void swiglu_forward(const T* gate_up, T* y, int64_t rows, int64_t f) {
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap<T> gate(gate_up + r * 2 * f, f), up(gate_up + r * 2 * f + f, f);
    ArrayMap<T>(y + r * f, f) = gate / (T(1) + (-gate).exp()) * up;
  }
}

// d silu(x)/dx = σ(x)·(1 + x·(1 − σ(x))).
template <typename T>
void swiglu_backward(const T* dy, const T* gate_up, T* dgate_up, int64_t rows, int64_t f) {
  Eigen::Array<T, Eigen::Dynamic, 1> sigma(f);
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap<T> gate(gate_up + r * 2 * f, f), up(gate_up + r * 2 * f + f, f), d(dy + r * f, f);
    sigma = T(1) / (T(1) + (-gate).exp());
    ArrayMap<T>(dgate_up + r * 2 * f + f, f) = d * gate * sigma;
    ArrayMap<T>(dgate_up + r * 2 * f, f) = d * up * sigma * (T(1) + gate * (T(1) - sigma));
  }
}

// The angles are computed in double whatever T is, so that f32 runs agree with an independent
// reference to rounding: at position 4,095 an f32 angle would already be off by ~2e-4 rad.
template <typename T>
void rotary(T* qkv, GroupedShape shape, double base, bool inverse) {
  const int64_t d = shape.head_dim, half = d / 2, width = (shape.heads + 2 * shape.kv_heads) * d;
  const int64_t rotated_heads = shape.heads + shape.kv_heads;  // q heads, then k groups
  std::vector<double> inverse_frequency(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inverse_frequency[size_t(i)] = std::pow(base, -2.0 * double(i) / double(d));
  std::vector<T> cosines(static_cast<size_t>(half)), sines(static_cast<size_t>(half));
  for (int64_t p = 0; p < shape.seq; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(p) * inverse_frequency[size_t(i)];
      cosines[size_t(i)] = T(std::cos(angle));
      sines[size_t(i)] = T(inverse ? -std::sin(angle) : std::sin(angle));
    }
    for (int64_t b = 0; b < shape.batch; ++b) {
      T* row = qkv + (b * shape.seq + p) * width;
      for (int64_t head = 0; head < rotated_heads; ++head) {
        T* x = row + head * d;
        for (int64_t i = 0; i < half; ++i) {
          const T first = x[i], second = x[i + half];
          x[i] = first * cosines[size_t(i)] - second * sines[size_t(i)];
          x[i + half] = second * cosines[size_t(i)] + first * sines[size_t(i)];
        }
      }
    }
  }
}

template <typename T>
void expand_query_groups(const T* grouped, T* full, GroupedShape shape) {
  const int64_t d = shape.head_dim, a = shape.heads, g = shape.kv_heads, per_group = a / g;
  const int64_t grouped_width = (a + 2 * g) * d, full_width = 3 * a * d;
  for (int64_t row = 0; row < shape.batch * shape.seq; ++row) {
    const T* in = grouped + row * grouped_width;
    T* out = full + row * full_width;
    std::copy_n(in, a * d, out);  // q
    for (int64_t head = 0; head < a; ++head) {
      const int64_t group = head / per_group;
      std::copy_n(in + (a + group) * d, d, out + (a + head) * d);          // k
      std::copy_n(in + (a + g + group) * d, d, out + (2 * a + head) * d);  // v
    }
  }
}

template <typename T>
void reduce_query_groups(const T* full, T* grouped, GroupedShape shape) {
  const int64_t d = shape.head_dim, a = shape.heads, g = shape.kv_heads, per_group = a / g;
  const int64_t grouped_width = (a + 2 * g) * d, full_width = 3 * a * d;
  for (int64_t row = 0; row < shape.batch * shape.seq; ++row) {
    const T* in = full + row * full_width;
    T* out = grouped + row * grouped_width;
    std::copy_n(in, a * d, out);
    std::fill_n(out + a * d, 2 * g * d, T(0));
    for (int64_t head = 0; head < a; ++head) {
      const int64_t group = head / per_group;
      ArrayMap<T>(out + (a + group) * d, d) += ConstArrayMap<T>(in + (a + head) * d, d);
      ArrayMap<T>(out + (a + g + group) * d, d) += ConstArrayMap<T>(in + (2 * a + head) * d, d);
    }
  }
}

#define LOOM_INSTANTIATE(T)                                                                                      \
  template void rmsnorm_forward<T>(const T*, const T*, T, T*, T*, int64_t, int64_t);                           \
  template void rmsnorm_backward<T>(const T*, const T*, const T*, const T*, T*, T*, int64_t, int64_t);         \
  template void swiglu_forward<T>(const T*, T*, int64_t, int64_t);                                             \
  template void swiglu_backward<T>(const T*, const T*, T*, int64_t, int64_t);                                  \
  template void rotary<T>(T*, GroupedShape, double, bool);                                                     \
  template void expand_query_groups<T>(const T*, T*, GroupedShape);                                            \
  template void reduce_query_groups<T>(const T*, T*, GroupedShape);
LOOM_INSTANTIATE(float)
LOOM_INSTANTIATE(double)
#undef LOOM_INSTANTIATE

}  // namespace loom::exec::cpu
