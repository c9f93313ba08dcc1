// The dense CPU kernels: matmul, bias, add, layernorm, GELU and causal attention — every backward
// against central finite differences in double, forwards against naive loops, the float Kernels
// against the double templates.

#include "kernels_test_support.hpp"

namespace loom::exec {
namespace {

using namespace kernel_testing;

TEST_F(CpuKernelsTest, MatmulAllTransposesForwardAndBackward) {
  const int64_t m = 4, n = 5, k = 3;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "transpose_a " << ta << " transpose_b " << tb);
      Vec a = random_vector(m * k, 1), b = random_vector(k * n, 2), c0 = random_vector(m * n, 3);
      const Vec w = random_vector(m * n, 4);
      const double alpha = 0.7, beta = -0.4;
      auto forward = [&] {
        Vec c = c0;
        cpu::matmul(a.data(), ta, b.data(), tb, c.data(), m, n, k, alpha, beta);
        return c;
      };
      Vec expected(m * n);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          double sum = 0;
          for (int64_t p = 0; p < k; ++p)
            sum += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
          expected[i * n + j] = alpha * sum + beta * c0[i * n + j];
        }
      }
      EXPECT_LE(relative_error(forward(), expected), 1e-14);
      // The gradient formulas the model uses, themselves matmuls: for y = op(a)·op(b) with
      // upstream w, d op(a) = w·op(b)ᵀ and d op(b) = op(a)ᵀ·w.
      Vec da(m * k), db(k * n);
      if (!ta) cpu::matmul(w.data(), false, b.data(), !tb, da.data(), m, k, n, alpha, 0.0);
      if (ta) cpu::matmul(b.data(), tb, w.data(), true, da.data(), k, m, n, alpha, 0.0);
      if (!tb) cpu::matmul(a.data(), !ta, w.data(), false, db.data(), k, n, m, alpha, 0.0);
      if (tb) cpu::matmul(w.data(), true, a.data(), ta, db.data(), n, k, m, alpha, 0.0);
      expect_gradient(
          a, [&] { return dot(w, forward()); }, da);
      expect_gradient(
          b, [&] { return dot(w, forward()); }, db);

      Tensor c = to_tensor(c0, {m, n});
      kernels->matmul(to_tensor(a, {ta ? k : m, ta ? m : k}), ta,
                      to_tensor(b, {tb ? n : k, tb ? k : n}), tb, c, float(alpha), float(beta));
      expect_float_close(c, expected);
    }
  }
}

TEST_F(CpuKernelsTest, MatmulFoldsLeadingAxesAndRejectsMismatches) {
  Tensor x = to_tensor(random_vector(2 * 3 * 4, 5), {2, 3, 4});
  Tensor w = to_tensor(random_vector(4 * 6, 6), {4, 6});
  Tensor y({2, 3, 6}, ElementType::f32, Device::cpu);
  std::fill_n(y.data<float>(), y.numel(), std::numeric_limits<float>::quiet_NaN());
  kernels->matmul(x, false, w, false, y);  // beta = 0 ignores what c held, NaN included
  Vec expected(36);
  cpu::matmul(to_vec(x).data(), false, to_vec(w).data(), false, expected.data(), 6, 6, 4, 1.0, 0.0);
  expect_float_close(y, expected);
  Tensor wrong({5, 6}, ElementType::f32, Device::cpu);
  EXPECT_THROW(kernels->matmul(x, false, wrong, false, y), Error);
  EXPECT_THROW(kernels->matmul(y, false, w, true, y), Error);  // c aliases a
}

TEST_F(CpuKernelsTest, BiasAndAdd) {
  const int64_t rows = 3, cols = 4;
  const Vec x = random_vector(rows * cols, 7), w = random_vector(rows * cols, 8);
  Vec bias = random_vector(cols, 9);
  auto forward = [&] {
    Vec y = x;
    cpu::add_bias(y.data(), bias.data(), rows, cols);
    return y;
  };
  Vec expected = x;
  for (int64_t i = 0; i < rows * cols; ++i) expected[i] += bias[i % cols];
  EXPECT_LE(relative_error(forward(), expected), 1e-15);
  Vec dbias(cols, 0.0);
  cpu::bias_backward(w.data(), dbias.data(), rows, cols);
  expect_gradient(
      bias, [&] { return dot(w, forward()); }, dbias);

  Tensor xt = to_tensor(x, {rows, cols});
  kernels->add_bias(xt, to_tensor(bias, {cols}));
  expect_float_close(xt, expected);
  Tensor a = to_tensor(x, {rows, cols});
  kernels->add(a, to_tensor(w, {rows, cols}), a);  // out aliases a
  Vec sum(rows * cols);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = x[i] + w[i];
  expect_float_close(a, sum);
}

TEST_F(CpuKernelsTest, LayernormForwardNormalisesAndBackwardMatchesDifferences) {
  const int64_t rows = 3, cols = 8;
  Vec x = random_vector(rows * cols, 10), gamma = random_vector(cols, 11),
      beta = random_vector(cols, 12);
  for (double& v : x) v = 3.0 + 2.0 * v;  // an offset and spread for the normalisation to undo
  const Vec w = random_vector(rows * cols, 13);
  const double eps = 1e-5;
  Vec mean(rows), rstd(rows);
  auto forward = [&] {
    Vec y(rows * cols);
    cpu::layernorm_forward(x.data(), gamma.data(), beta.data(), eps, y.data(), mean.data(),
                           rstd.data(), rows, cols);
    return y;
  };
  const Vec y = forward();
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0, normalised_mean = 0, normalised_var = 0;
    for (int64_t c = 0; c < cols; ++c) mu += x[r * cols + c] / cols;
    for (int64_t c = 0; c < cols; ++c) var += std::pow(x[r * cols + c] - mu, 2) / cols;
    for (int64_t c = 0; c < cols; ++c) {
      const double n = (y[r * cols + c] - beta[c]) / gamma[c];  // before gamma/beta
      EXPECT_NEAR(n, (x[r * cols + c] - mu) / std::sqrt(var + eps), 1e-12);
      normalised_mean += n / cols;
      normalised_var += n * n / cols;
    }
    EXPECT_NEAR(normalised_mean, 0.0, 1e-12);
    EXPECT_NEAR(normalised_var, var / (var + eps), 1e-12);  // 1 up to eps
    EXPECT_NEAR(mean[r], mu, 1e-12);
    EXPECT_NEAR(rstd[r], 1 / std::sqrt(var + eps), 1e-12);
  }
  // Parameter gradients accumulate: start them from non-zero values and look at the increase.
  const Vec dgamma0 = random_vector(cols, 14), dbeta0 = random_vector(cols, 15);
  Vec dx(rows * cols), dgamma = dgamma0, dbeta = dbeta0;
  cpu::layernorm_backward(w.data(), x.data(), gamma.data(), mean.data(), rstd.data(), dx.data(),
                          dgamma.data(), dbeta.data(), rows, cols);
  for (int64_t c = 0; c < cols; ++c) dgamma[c] -= dgamma0[c], dbeta[c] -= dbeta0[c];
  auto loss = [&] { return dot(w, forward()); };
  expect_gradient(x, loss, dx);
  expect_gradient(gamma, loss, dgamma);
  expect_gradient(beta, loss, dbeta);

  Tensor yt({rows, cols}, ElementType::f32, Device::cpu), mt({rows}, ElementType::f32, Device::cpu), rt({rows}, ElementType::f32, Device::cpu), dxt({rows, cols}, ElementType::f32, Device::cpu);
  Tensor dgt = Tensor::zeros({cols}, ElementType::f32, Device::cpu), dbt = Tensor::zeros({cols}, ElementType::f32, Device::cpu);
  Tensor xt = to_tensor(x, {rows, cols}), gt = to_tensor(gamma, {cols});
  kernels->layernorm_forward(xt, gt, to_tensor(beta, {cols}), float(eps), yt, mt, rt);
  kernels->layernorm_backward(to_tensor(w, {rows, cols}), xt, gt, mt, rt, dxt, dgt, dbt);
  expect_float_close(yt, y);
  expect_float_close(dxt, dx);
  expect_float_close(dgt, dgamma);
  expect_float_close(dbt, dbeta);
}

TEST_F(CpuKernelsTest, Gelu) {
  const int64_t n = 1100;  // more than one of the kernel's blocks
  Vec x = random_vector(n, 16);
  for (double& v : x) v *= 4.0;
  const Vec w = random_vector(n, 17);
  auto forward = [&] {
    Vec y(n);
    cpu::gelu_forward(x.data(), y.data(), n);
    return y;
  };
  Vec expected(n);
  for (int64_t i = 0; i < n; ++i) {
    expected[i] =
        0.5 * x[i] * (1 + std::tanh(std::sqrt(2 / M_PI) * (x[i] + 0.044715 * std::pow(x[i], 3))));
  }
  EXPECT_LE(relative_error(forward(), expected), 1e-14);
  Vec dx(n);
  cpu::gelu_backward(w.data(), x.data(), dx.data(), n);
  expect_gradient(
      x, [&] { return dot(w, forward()); }, dx);

  Tensor xt = to_tensor(x, {n}), yt({n}, ElementType::f32, Device::cpu), dxt({n}, ElementType::f32, Device::cpu);
  kernels->gelu_forward(xt, yt);
  kernels->gelu_backward(to_tensor(w, {n}), xt, dxt);
  expect_float_close(yt, expected);
  expect_float_close(dxt, dx);
}

// Sequence 131 spans several of the kernel's 64-row panels, and ends in a partial one.
TEST_F(CpuKernelsTest, CausalAttention) {
  for (const cpu::AttentionShape& shape :
       {cpu::AttentionShape{2, 5, 2, 3}, cpu::AttentionShape{1, 131, 2, 2}}) {
    SCOPED_TRACE(::testing::Message() << "seq " << shape.seq);
    const int64_t b = shape.batch, s = shape.seq, heads = shape.heads, d = shape.head_dim;
    Vec qkv = random_vector(b * s * 3 * heads * d, 18);
    const Vec w = random_vector(b * s * heads * d, 19);
    Vec probabilities(b * heads * s * s);
    auto forward = [&] {
      Vec out(b * s * heads * d);
      cpu::attention_forward(qkv.data(), out.data(), probabilities.data(), shape);
      return out;
    };
    const Vec out = forward();
    // Naive loops: position i attends to j ≤ i with softmax(q·k/√d).
    Vec expected(out.size());
    auto at = [&](int64_t batch, int64_t pos, int64_t part, int64_t h, int64_t c) {
      return qkv[((batch * s + pos) * 3 + part) * heads * d + h * d + c];
    };
    for (int64_t bb = 0; bb < b; ++bb) {
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t i = 0; i < s; ++i) {
          Vec p(i + 1);
          double total = 0;
          for (int64_t j = 0; j <= i; ++j) {
            double score = 0;
            for (int64_t c = 0; c < d; ++c) score += at(bb, i, 0, h, c) * at(bb, j, 1, h, c);
            total += p[j] = std::exp(score / std::sqrt(double(d)));
          }
          for (int64_t j = 0; j < s; ++j) {
            const double saved = probabilities[((bb * heads + h) * s + i) * s + j];
            EXPECT_NEAR(saved, j <= i ? p[j] / total : 0.0, 1e-14);
          }
          for (int64_t c = 0; c < d; ++c) {
            double sum = 0;
            for (int64_t j = 0; j <= i; ++j) sum += p[j] / total * at(bb, j, 2, h, c);
            expected[(bb * s + i) * heads * d + h * d + c] = sum;
          }
        }
      }
    }
    EXPECT_LE(relative_error(out, expected), 1e-14);
    Vec dqkv(qkv.size(), 7.0);  // overwritten
    cpu::attention_backward(w.data(), qkv.data(), probabilities.data(), dqkv.data(), shape);
    const Vec saved_probabilities = probabilities;
    expect_gradient(
        qkv, [&] { return dot(w, forward()); }, dqkv);

    Tensor qkvt = to_tensor(qkv, {b, s, 3 * heads * d}), outt({b, s, heads * d}, ElementType::f32, Device::cpu),
           pt({b, heads, s, s}, ElementType::f32, Device::cpu);
    Tensor dqkvt({b, s, 3 * heads * d}, ElementType::f32, Device::cpu);
    kernels->attention_forward(qkvt, heads, outt, pt);
    kernels->attention_backward(to_tensor(w, {b, s, heads * d}), qkvt, pt, heads, dqkvt);
    expect_float_close(outt, expected);
    expect_float_close(pt, saved_probabilities);
    expect_float_close(dqkvt, dqkv);
  }
}

}  // namespace
}  // namespace loom::exec
