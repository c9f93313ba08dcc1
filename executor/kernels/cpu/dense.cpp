// The row-wise and elementwise CPU kernels: GEMM, bias, residual add, layernorm, GELU, AdamW.

#include "executor/kernels/cpu/cpu_math.hpp"
#include "executor/kernels/cpu/eigen_maps.hpp"

#include <algorithm>
#include <array>
#include <cmath>

namespace loom::exec::cpu {
namespace {

// GELU's tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
template <typename T>
constexpr T kGeluScale = T(0.7978845608028654);  // √(2/π)
template <typename T>
constexpr T kGeluCubic = T(0.044715);

// GELU works through blocks small enough for the stack, so tanh is computed once per element
// (and vectorised by Eigen) without a heap buffer.
constexpr int64_t kGeluBlock = 512;

}  // namespace

// Eigen reads the transposes off the Maps' storage order, so no operand is copied; .noalias()
// lets the product write straight into c.
template <typename T>
void matmul(const T* a, bool transpose_a, const T* b, bool transpose_b, T* c, int64_t m, int64_t n,
            int64_t k, T alpha, T beta) {
  ConstMatrixMap<T> a_map(a, transpose_a ? k : m, transpose_a ? m : k);
  ConstMatrixMap<T> b_map(b, transpose_b ? n : k, transpose_b ? k : n);
  MatrixMap<T> c_map(c, m, n);
  auto run = [&](const auto& op_a, const auto& op_b) {
    if (beta == T(0)) {
      c_map.noalias() = alpha * op_a * op_b;  // c may hold garbage (even NaN): overwrite it
    } else {
      if (beta != T(1)) c_map *= beta;
      c_map.noalias() += alpha * op_a * op_b;
    }
  };
  if (!transpose_a && !transpose_b) run(a_map, b_map);
  if (!transpose_a && transpose_b) run(a_map, b_map.transpose());
  if (transpose_a && !transpose_b) run(a_map.transpose(), b_map);
  if (transpose_a && transpose_b) run(a_map.transpose(), b_map.transpose());
}

template <typename T>
void add_bias(T* x, const T* bias, int64_t rows, int64_t cols) {
  ConstArrayMap<T> bias_map(bias, cols);
  for (int64_t r = 0; r < rows; ++r) ArrayMap<T>(x + r * cols, cols) += bias_map;
}

template <typename T>
void bias_backward(const T* dy, T* dbias, int64_t rows, int64_t cols) {
  ArrayMap<T> dbias_map(dbias, cols);
  for (int64_t r = 0; r < rows; ++r) dbias_map += ConstArrayMap<T>(dy + r * cols, cols);
}

template <typename T>
void add(const T* a, const T* b, T* out, int64_t count) {
  ArrayMap<T>(out, count) = ConstArrayMap<T>(a, count) + ConstArrayMap<T>(b, count);
}

template <typename T>
void scale(T* x, T factor, int64_t count) {
  ArrayMap<T>(x, count) *= factor;
}

template <typename T>
double sum_of_squares(const T* x, int64_t count) {
  return ConstArrayMap<T>(x, count).template cast<double>().square().sum();
}

// Two passes per row (mean, then the variance around it) rather than E[x²] − E[x]², which
// cancels badly in float when the mean is large against the spread.
template <typename T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd,
                       int64_t rows, int64_t cols) {
  ConstArrayMap<T> gamma_map(gamma, cols);
  ConstArrayMap<T> beta_map(beta, cols);
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap<T> x_row(x + r * cols, cols);
    T row_mean = x_row.mean();
    T variance = (x_row - row_mean).square().mean();
    T row_rstd = T(1) / std::sqrt(variance + eps);
    ArrayMap<T>(y + r * cols, cols) = (x_row - row_mean) * row_rstd * gamma_map + beta_map;
    mean[r] = row_mean;
    rstd[r] = row_rstd;
  }
}

// With x̂ = (x − mean)·rstd and g = dy·gamma: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)).
template <typename T>
void layernorm_backward(const T* dy, const T* x, const T* gamma, const T* mean, const T* rstd,
                        T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t cols) {
  ConstArrayMap<T> gamma_map(gamma, cols);
  ArrayMap<T> dgamma_map(dgamma, cols);
  ArrayMap<T> dbeta_map(dbeta, cols);
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap<T> dy_row(dy + r * cols, cols);
    ConstArrayMap<T> x_row(x + r * cols, cols);
    auto x_hat = (x_row - mean[r]) * rstd[r];
    auto g = dy_row * gamma_map;
    T mean_g = g.mean();
    T mean_g_x_hat = (g * x_hat).mean();
    dgamma_map += dy_row * x_hat;
    dbeta_map += dy_row;
    ArrayMap<T>(dx + r * cols, cols) = rstd[r] * (g - mean_g - x_hat * mean_g_x_hat);
  }
}

template <typename T>
void gelu_forward(const T* x, T* y, int64_t count) {
  for (int64_t begin = 0; begin < count; begin += kGeluBlock) {
    int64_t size = std::min(kGeluBlock, count - begin);
    ConstArrayMap<T> x_block(x + begin, size);
    ArrayMap<T>(y + begin, size) =
        T(0.5) * x_block *
        (T(1) + (kGeluScale<T> * (x_block + kGeluCubic<T> * x_block.cube())).tanh());
  }
}

// d/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²), t = tanh(√(2/π)·(x +
// 0.044715·x³)).
template <typename T>
void gelu_backward(const T* dy, const T* x, T* dx, int64_t count) {
  std::array<T, kGeluBlock> tanh_buffer;
  for (int64_t begin = 0; begin < count; begin += kGeluBlock) {
    int64_t size = std::min(kGeluBlock, count - begin);
    ConstArrayMap<T> x_block(x + begin, size);
    ArrayMap<T> t(tanh_buffer.data(), size);
    t = (kGeluScale<T> * (x_block + kGeluCubic<T> * x_block.cube())).tanh();
    ArrayMap<T>(dx + begin, size) =
        ConstArrayMap<T>(dy + begin, size) *
        (T(0.5) * (T(1) + t) + T(0.5) * x_block * (T(1) - t.square()) * kGeluScale<T> *
                                   (T(1) + T(3) * kGeluCubic<T> * x_block.square()));
  }
}

// The bias corrections are formed in double: β^step underflows gracefully and 1 − β2^step is
// small early on, where float would lose digits.
template <typename T>
void adamw(T* parameter, const T* gradient, T* m, T* v, int64_t count,
           const AdamWSettings<T>& settings) {
  const double correction1 = 1.0 - std::pow(double(settings.beta1), double(settings.step));
  const double correction2 = 1.0 - std::pow(double(settings.beta2), double(settings.step));
  const T step_size = T(double(settings.lr) / correction1);
  const T inverse_sqrt_correction2 = T(1.0 / std::sqrt(correction2));
  const T decay = T(1) - settings.lr * settings.weight_decay;
  ConstArrayMap<T> g(gradient, count);
  ArrayMap<T> m_map(m, count);
  ArrayMap<T> v_map(v, count);
  ArrayMap<T> p(parameter, count);
  m_map = settings.beta1 * m_map + (T(1) - settings.beta1) * g;
  v_map = settings.beta2 * v_map + (T(1) - settings.beta2) * g.square();
  p = p * decay - step_size * m_map / (v_map.sqrt() * inverse_sqrt_correction2 + settings.eps);
}

#define LOOM_INSTANTIATE_DENSE(T)                                                               \
  template void matmul<T>(const T*, bool, const T*, bool, T*, int64_t, int64_t, int64_t, T, T); \
  template void add_bias<T>(T*, const T*, int64_t, int64_t);                                    \
  template void bias_backward<T>(const T*, T*, int64_t, int64_t);                               \
  template void add<T>(const T*, const T*, T*, int64_t);                                        \
  template void scale<T>(T*, T, int64_t);                                                       \
  template double sum_of_squares<T>(const T*, int64_t);                                         \
  template void layernorm_forward<T>(const T*, const T*, const T*, T, T*, T*, T*, int64_t,      \
                                     int64_t);                                                  \
  template void layernorm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, \
                                      T*, int64_t, int64_t);                                    \
  template void gelu_forward<T>(const T*, T*, int64_t);                                         \
  template void gelu_backward<T>(const T*, const T*, T*, int64_t);                              \
  template void adamw<T>(T*, const T*, T*, T*, int64_t, const AdamWSettings<T>&);

LOOM_INSTANTIATE_DENSE(float)
LOOM_INSTANTIATE_DENSE(double)

}  // namespace loom::exec::cpu
