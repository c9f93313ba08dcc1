// The CPU kernels: every backward against central finite differences of its forward in double
// precision, forwards against naive loops written here, and the float Kernels (what training
// runs) against the double templates.

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

namespace loom::exec {
namespace {

using Vec = std::vector<double>;
constexpr double kGradientTolerance = 1e-6;  // finite differences vs backward, double
constexpr double kFloatTolerance = 1e-5;     // float Kernels vs double templates

Vec random_vector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  Vec v(n);
  for (double& x : v) x = uniform(rng);
  return v;
}

std::vector<int32_t> random_tokens(size_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> uniform(0, vocab - 1);
  std::vector<int32_t> tokens(n);
  for (int32_t& t : tokens) t = uniform(rng);
  return tokens;
}

// ‖a − b‖∞ / ‖b‖∞: relative to the result's scale, so elements near zero do not dominate.
double relative_error(const Vec& a, const Vec& b) {
  EXPECT_EQ(a.size(), b.size());
  double difference = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference = std::max(difference, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return difference / std::max(scale, 1e-300);
}

double dot(const Vec& a, const Vec& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

// Checks `analytic` against central differences of loss() in every element of x.
void expect_gradient(Vec& x, const std::function<double()>& loss, const Vec& analytic) {
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

Tensor to_tensor(const Vec& v, std::vector<int64_t> shape) {
  Tensor t(std::move(shape));
  EXPECT_EQ(size_t(t.numel()), v.size());
  std::transform(v.begin(), v.end(), t.data<float>(), [](double x) { return float(x); });
  return t;
}
Tensor to_tensor(const std::vector<int32_t>& v) {
  Tensor t({int64_t(v.size())}, ElementType::i32);
  std::copy(v.begin(), v.end(), t.data<int32_t>());
  return t;
}
Vec to_vec(const Tensor& t) {
  return Vec(t.data<float>(), t.data<float>() + t.numel());
}

void expect_float_close(const Tensor& actual, const Vec& expected) {
  EXPECT_LE(relative_error(to_vec(actual), expected), kFloatTolerance) << actual.shape_string();
}

class CpuKernelsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
};

TEST_F(CpuKernelsTest, MatmulAllTransposesForwardAndBackward) {
  const int64_t m = 4, n = 5, k = 3;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(testing::Message() << "transpose_a " << ta << " transpose_b " << tb);
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
  Tensor y({2, 3, 6});
  std::fill_n(y.data<float>(), y.numel(), std::numeric_limits<float>::quiet_NaN());
  kernels->matmul(x, false, w, false, y);  // beta = 0 ignores what c held, NaN included
  Vec expected(36);
  cpu::matmul(to_vec(x).data(), false, to_vec(w).data(), false, expected.data(), 6, 6, 4, 1.0, 0.0);
  expect_float_close(y, expected);
  Tensor wrong({5, 6});
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

  Tensor yt({rows, cols}), mt({rows}), rt({rows}), dxt({rows, cols});
  Tensor dgt = Tensor::zeros({cols}), dbt = Tensor::zeros({cols});
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

  Tensor xt = to_tensor(x, {n}), yt({n}), dxt({n});
  kernels->gelu_forward(xt, yt);
  kernels->gelu_backward(to_tensor(w, {n}), xt, dxt);
  expect_float_close(yt, expected);
  expect_float_close(dxt, dx);
}

// Sequence 131 spans several of the kernel's 64-row panels, and ends in a partial one.
TEST_F(CpuKernelsTest, CausalAttention) {
  for (const cpu::AttentionShape& shape :
       {cpu::AttentionShape{2, 5, 2, 3}, cpu::AttentionShape{1, 131, 2, 2}}) {
    SCOPED_TRACE(testing::Message() << "seq " << shape.seq);
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

    Tensor qkvt = to_tensor(qkv, {b, s, 3 * heads * d}), outt({b, s, heads * d}),
           pt({b, heads, s, s});
    Tensor dqkvt({b, s, 3 * heads * d});
    kernels->attention_forward(qkvt, heads, outt, pt);
    kernels->attention_backward(to_tensor(w, {b, s, heads * d}), qkvt, pt, heads, dqkvt);
    expect_float_close(outt, expected);
    expect_float_close(pt, saved_probabilities);
    expect_float_close(dqkvt, dqkv);
  }
}

TEST_F(CpuKernelsTest, EmbeddingShard) {
  const int64_t vocab_start = 4, shard_rows = 5, cols = 3;
  const std::vector<int32_t> tokens{0, 4, 8, 9, 6, 4, 3};  // 0, 9 and 3 lie outside the shard
  const int64_t n = int64_t(tokens.size());
  Vec table = random_vector(shard_rows * cols, 20);
  const Vec w = random_vector(n * cols, 21);
  auto forward = [&] {
    Vec out(n * cols, 5.0);
    cpu::embedding_forward(tokens.data(), table.data(), vocab_start, shard_rows, out.data(), n,
                           cols);
    return out;
  };
  Vec expected(n * cols, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = tokens[i] - vocab_start;
    if (row < 0 || row >= shard_rows) continue;
    for (int64_t c = 0; c < cols; ++c) expected[i * cols + c] = table[row * cols + c];
  }
  EXPECT_EQ(forward(), expected);
  Vec dtable(shard_rows * cols, 0.0);
  cpu::embedding_backward(w.data(), tokens.data(), vocab_start, shard_rows, dtable.data(), n, cols);
  expect_gradient(
      table, [&] { return dot(w, forward()); }, dtable);

  Tensor tokens_t = to_tensor(tokens), out({n, cols}), dtable_t = Tensor::zeros({shard_rows, cols});
  kernels->embedding_forward(tokens_t, to_tensor(table, {shard_rows, cols}), vocab_start, out);
  kernels->embedding_backward(to_tensor(w, {n, cols}), tokens_t, vocab_start, dtable_t);
  expect_float_close(out, expected);
  expect_float_close(dtable_t, dtable);
}

// One tensor-parallel rank's columns of the logits.
struct CrossEntropyShard {
  Vec logits;
  int64_t vocab_start = 0;
  int64_t vocab = 0;
};

TEST_F(CpuKernelsTest, CrossEntropySingleShardAndSplitShards) {
  const int64_t rows = 6, vocab = 10, split = 4;
  const std::vector<int32_t> targets = random_tokens(rows, int32_t(vocab), 22);
  Vec logits = random_vector(rows * vocab, 23);
  for (double& v : logits) v *= 3.0;
  const double scale = 1.0 / rows;
  Vec row_max(rows), sum_exp(rows), target_logit(rows);
  auto loss = [&] {
    cpu::cross_entropy_partials(logits.data(), targets.data(), 0, row_max.data(), sum_exp.data(),
                                target_logit.data(), rows, vocab);
    double total = 0;
    for (int64_t r = 0; r < rows; ++r)
      total += scale * (std::log(sum_exp[r]) + row_max[r] - target_logit[r]);
    return total;
  };
  const double full_loss = loss();
  Vec dlogits(rows * vocab);
  cpu::cross_entropy_backward(logits.data(), targets.data(), 0, row_max.data(), sum_exp.data(),
                              scale, dlogits.data(), rows, vocab);
  expect_gradient(logits, loss, dlogits);

  // Two shards, columns [0, split) and [split, vocab), combined by hand as the tp reductions do.
  CrossEntropyShard shards[2] = {{{}, 0, split}, {{}, split, vocab - split}};
  Vec partial[2][3];
  for (CrossEntropyShard& shard : shards) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < shard.vocab; ++c)
        shard.logits.push_back(logits[r * vocab + shard.vocab_start + c]);
    }
  }
  for (int i = 0; i < 2; ++i) {
    for (Vec& v : partial[i]) v.assign(rows, 0.0);
    cpu::cross_entropy_partials(shards[i].logits.data(), targets.data(), shards[i].vocab_start,
                                partial[i][0].data(), partial[i][1].data(), partial[i][2].data(),
                                rows, shards[i].vocab);
  }
  Vec global_max(rows), global_sum(rows);
  double split_loss = 0;
  for (int64_t r = 0; r < rows; ++r) {
    global_max[r] = std::max(partial[0][0][r], partial[1][0][r]);
    for (int i = 0; i < 2; ++i)
      global_sum[r] += partial[i][1][r] * std::exp(partial[i][0][r] - global_max[r]);
    const double target = partial[0][2][r] + partial[1][2][r];  // exactly one shard holds it
    EXPECT_EQ(target, logits[r * vocab + targets[r]]);
    split_loss += scale * (std::log(global_sum[r]) + global_max[r] - target);
  }
  EXPECT_NEAR(split_loss, full_loss, 1e-12 * std::abs(full_loss));
  Vec combined(rows * vocab);
  for (int i = 0; i < 2; ++i) {
    Vec d(rows * shards[i].vocab);
    cpu::cross_entropy_backward(shards[i].logits.data(), targets.data(), shards[i].vocab_start,
                                global_max.data(), global_sum.data(), scale, d.data(), rows,
                                shards[i].vocab);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < shards[i].vocab; ++c)
        combined[r * vocab + shards[i].vocab_start + c] = d[r * shards[i].vocab + c];
    }
  }
  EXPECT_LE(relative_error(combined, dlogits), 1e-14);

  Tensor lt = to_tensor(logits, {rows, vocab}), tt = to_tensor(targets);
  Tensor mt({rows}), st({rows}), ttl({rows});
  kernels->cross_entropy_partials(lt, tt, 0, mt, st, ttl);
  expect_float_close(mt, row_max);
  expect_float_close(st, sum_exp);
  expect_float_close(ttl, target_logit);
  kernels->cross_entropy_backward(lt, tt, 0, mt, st, float(scale), lt);  // in place over the logits
  expect_float_close(lt, dlogits);
}

TEST_F(CpuKernelsTest, AdamWTwoStepsByHand) {
  const double lr = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, wd = 0.1;
  const Vec p0{0.5, -1.5, 2.0}, g1{0.1, -0.3, 0.02}, g2{-0.2, -0.1, 0.05};
  Vec expected = p0, m(3, 0.0), v(3, 0.0);
  for (int step = 1; step <= 2; ++step) {
    const Vec& g = step == 1 ? g1 : g2;
    for (size_t i = 0; i < 3; ++i) {
      expected[i] -= lr * wd * expected[i];  // decoupled decay first, as in PyTorch
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      const double m_hat = m[i] / (1 - std::pow(beta1, step));
      const double v_hat = v[i] / (1 - std::pow(beta2, step));
      expected[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
    if (step == 1) {  // step 1 moves every weight by about lr·sign(g) after the decay
      for (size_t i = 0; i < 3; ++i)
        EXPECT_NEAR(expected[i], p0[i] * (1 - lr * wd) - lr * g1[i] / (std::abs(g1[i]) + eps),
                    1e-15);
    }
  }
  Vec p = p0, md(3, 0.0), vd(3, 0.0);
  Tensor pt = to_tensor(p0, {3}), mt = Tensor::zeros({3}), vt = Tensor::zeros({3});
  for (int step = 1; step <= 2; ++step) {
    const Vec& g = step == 1 ? g1 : g2;
    cpu::adamw(p.data(), g.data(), md.data(), vd.data(), 3,
               cpu::AdamWSettings<double>{lr, beta1, beta2, eps, wd, step});
    kernels->adamw(pt, to_tensor(g, {3}), mt, vt, float(lr), float(beta1), float(beta2), float(eps),
                   float(wd), step);
  }
  EXPECT_LE(relative_error(p, expected), 1e-15);
  EXPECT_LE(relative_error(md, m), 1e-15);
  EXPECT_LE(relative_error(vd, v), 1e-15);
  expect_float_close(pt, expected);
  expect_float_close(mt, m);
}

// Backward twice: parameter gradients double (microbatch accumulation), dx stays the same.
TEST_F(CpuKernelsTest, BackwardAccumulatesParameterGradientsAndOverwritesActivationGradients) {
  const int64_t rows = 4, cols = 6;
  Tensor x = to_tensor(random_vector(rows * cols, 24), {rows, cols});
  Tensor dy = to_tensor(random_vector(rows * cols, 25), {rows, cols});
  Tensor gamma = to_tensor(random_vector(cols, 26), {cols}),
         beta = to_tensor(random_vector(cols, 27), {cols});
  Tensor y({rows, cols}), mean({rows}), rstd({rows}), dx({rows, cols});
  Tensor dgamma = Tensor::zeros({cols}), dbeta = Tensor::zeros({cols}),
         dbias = Tensor::zeros({cols});
  Tensor tokens = to_tensor(std::vector<int32_t>{1, 2, 1, 0}), dtable = Tensor::zeros({3, cols});
  kernels->layernorm_forward(x, gamma, beta, 1e-5f, y, mean, rstd);
  auto backward = [&] {
    kernels->layernorm_backward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
    kernels->bias_backward(dy, dbias);
    kernels->embedding_backward(dy, tokens, 0, dtable);
  };
  backward();
  const Vec dx1 = to_vec(dx), dgamma1 = to_vec(dgamma), dbeta1 = to_vec(dbeta),
            dbias1 = to_vec(dbias), dtable1 = to_vec(dtable);
  backward();
  EXPECT_EQ(to_vec(dx), dx1);
  auto doubled = [](Vec v) {
    for (double& e : v) e *= 2;
    return v;
  };
  // Not bit-exact: the second call adds row by row onto the first call's sum.
  expect_float_close(dgamma, doubled(dgamma1));
  expect_float_close(dbeta, doubled(dbeta1));
  expect_float_close(dbias, doubled(dbias1));
  expect_float_close(dtable, doubled(dtable1));
}

TEST_F(CpuKernelsTest, SumOfSquaresScaleAndCopy) {
  const Vec values = random_vector(37, 28);
  Tensor x = to_tensor(values, {37});
  double expected = 0;
  for (double v : to_vec(x)) expected += double(v) * double(v);
  EXPECT_NEAR(kernels->sum_of_squares(x), expected, 1e-12 * expected);
  kernels->scale(x, -2.0f);
  Vec scaled = values;
  for (double& v : scaled) v *= -2.0;
  expect_float_close(x, scaled);
  Tensor y({37});
  kernels->copy(x, y);
  EXPECT_EQ(to_vec(y), to_vec(x));
  Tensor wrong({36});
  EXPECT_THROW(kernels->copy(x, wrong), Error);
  Tensor integers({37}, ElementType::i32);
  EXPECT_THROW(kernels->scale(integers, 1.0f), Error);
}

TEST(CpuKernels, NeedsAtLeastOneThread) {
  EXPECT_THROW(make_cpu_kernels(0), InvalidInput);
}

}  // namespace
}  // namespace loom::exec
