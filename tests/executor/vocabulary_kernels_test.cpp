// The vocabulary and optimizer CPU kernels: embedding and vocab-parallel cross-entropy (one shard
// and split shards), AdamW by hand, accumulate-versus-overwrite semantics, the small helpers.

#include "kernels_test_support.hpp"

namespace loom::exec {
namespace {

using namespace kernel_testing;

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

  Tensor tokens_t = to_tensor(tokens), out({n, cols}, ElementType::f32, Device::cpu), dtable_t = Tensor::zeros({shard_rows, cols}, ElementType::f32, Device::cpu);
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
  Tensor mt({rows}, ElementType::f32, Device::cpu), st({rows}, ElementType::f32, Device::cpu), ttl({rows}, ElementType::f32, Device::cpu);
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
  Tensor pt = to_tensor(p0, {3}), mt = Tensor::zeros({3}, ElementType::f32, Device::cpu), vt = Tensor::zeros({3}, ElementType::f32, Device::cpu);
  for (int step = 1; step <= 2; ++step) {
    const Vec& g = step == 1 ? g1 : g2;
    cpu::adamw(p.data(), g.data(), md.data(), vd.data(), 3,
               cpu::AdamWSettings<double>{lr, beta1, beta2, eps, wd, step});
    kernels->adamw(pt, to_tensor(g, {3}), mt, vt,
                   AdamWSettings{float(lr), float(beta1), float(beta2), float(eps), float(wd), step});
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
  Tensor y({rows, cols}, ElementType::f32, Device::cpu), mean({rows}, ElementType::f32, Device::cpu), rstd({rows}, ElementType::f32, Device::cpu), dx({rows, cols}, ElementType::f32, Device::cpu);
  Tensor dgamma = Tensor::zeros({cols}, ElementType::f32, Device::cpu), dbeta = Tensor::zeros({cols}, ElementType::f32, Device::cpu),
         dbias = Tensor::zeros({cols}, ElementType::f32, Device::cpu);
  Tensor tokens = to_tensor(std::vector<int32_t>{1, 2, 1, 0}), dtable = Tensor::zeros({3, cols}, ElementType::f32, Device::cpu);
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
  Tensor y({37}, ElementType::f32, Device::cpu);
  kernels->copy(x, y);
  EXPECT_EQ(to_vec(y), to_vec(x));
  Tensor wrong({36}, ElementType::f32, Device::cpu);
  EXPECT_THROW(kernels->copy(x, wrong), Error);
  Tensor integers({37}, ElementType::i32, Device::cpu);
  EXPECT_THROW(kernels->scale(integers, 1.0f), Error);
}

TEST(CpuKernels, NeedsAtLeastOneThread) {
  EXPECT_THROW(make_cpu_kernels(0), InvalidInput);
}

}  // namespace
}  // namespace loom::exec
