// The tiled flash attention kernel against the unfused one (the reference: itself checked against
// naive loops and finite differences in kernels_test.cpp): outputs, log-sum-exps and gradients in
// double to rounding, the float Kernels to fp32 rounding, on shapes that cover one position, a
// sequence inside one 64-row tile, whole tiles and a partial last tile, several heads and
// micro-batches; and the flash backward against finite differences of the flash forward.

#include "kernels_test_support.hpp"

#include <limits>

namespace loom::exec {
namespace {

using namespace kernel_testing;

constexpr double kDoubleTolerance = 1e-12;  // two summation orders of the same double sums

std::vector<cpu::AttentionShape> flash_test_shapes() {
  return {
      cpu::AttentionShape{1, 1, 1, 4},    // one position: out = v, lse = its only score
      cpu::AttentionShape{2, 5, 2, 3},    // inside one tile
      cpu::AttentionShape{1, 64, 2, 8},   // exactly one tile
      cpu::AttentionShape{3, 128, 2, 4},  // exactly two tiles, three micro-batches
      cpu::AttentionShape{2, 131, 3, 8},  // three tiles, the last of 3 rows; three heads
      cpu::AttentionShape{1, 200, 4, 16},
  };
}

std::string describe_shape(const cpu::AttentionShape& s) {
  return "batch " + std::to_string(s.batch) + " seq " + std::to_string(s.seq) + " heads " +
         std::to_string(s.heads) + " head_dim " + std::to_string(s.head_dim);
}

// log Σ_{j ≤ i} exp(q_i·k_j/√d) per (batch, head, i), by naive loops.
Vec naive_log_sum_exp(const Vec& qkv, const cpu::AttentionShape& shape) {
  const int64_t s = shape.seq, heads = shape.heads, d = shape.head_dim;
  auto at = [&](int64_t batch, int64_t pos, int64_t part, int64_t h, int64_t c) {
    return qkv[((batch * s + pos) * 3 + part) * heads * d + h * d + c];
  };
  Vec lse(shape.batch * heads * s);
  for (int64_t b = 0; b < shape.batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < s; ++i) {
        double total = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double score = 0;
          for (int64_t c = 0; c < d; ++c) score += at(b, i, 0, h, c) * at(b, j, 1, h, c);
          total += std::exp(score / std::sqrt(double(d)));
        }
        lse[(b * heads + h) * s + i] = std::log(total);
      }
  return lse;
}

struct AttentionResult {
  Vec out, saved, dqkv;  // saved: probabilities (unfused) or log-sum-exp (flash)
};

AttentionResult run_unfused(const Vec& qkv, const Vec& dout, const cpu::AttentionShape& shape) {
  AttentionResult r{Vec(dout.size()), Vec(shape.batch * shape.heads * shape.seq * shape.seq),
                    Vec(qkv.size(), 7.0)};
  cpu::attention_forward(qkv.data(), r.out.data(), r.saved.data(), shape);
  cpu::attention_backward(dout.data(), qkv.data(), r.saved.data(), r.dqkv.data(), shape);
  return r;
}

// dqkv starts as garbage: the backward must overwrite all of it.
AttentionResult run_flash(const Vec& qkv, const Vec& dout, const cpu::AttentionShape& shape) {
  AttentionResult r{Vec(dout.size(), std::numeric_limits<double>::quiet_NaN()),
                    Vec(shape.batch * shape.heads * shape.seq), Vec(qkv.size(), 7.0)};
  cpu::flash_attention_forward(qkv.data(), r.out.data(), r.saved.data(), shape);
  cpu::flash_attention_backward(dout.data(), qkv.data(), r.out.data(), r.saved.data(),
                                r.dqkv.data(), shape);
  return r;
}

TEST(FlashAttention, MatchesTheUnfusedKernelInDouble) {
  uint32_t seed = 100;
  for (const cpu::AttentionShape& shape : flash_test_shapes()) {
    SCOPED_TRACE(describe_shape(shape));
    const Vec qkv = random_vector(shape.batch * shape.seq * 3 * shape.heads * shape.head_dim, seed++);
    const Vec dout = random_vector(shape.batch * shape.seq * shape.heads * shape.head_dim, seed++);
    const AttentionResult unfused = run_unfused(qkv, dout, shape);
    const AttentionResult flash = run_flash(qkv, dout, shape);
    EXPECT_LE(relative_error(flash.out, unfused.out), kDoubleTolerance);
    EXPECT_LE(relative_error(flash.saved, naive_log_sum_exp(qkv, shape)), kDoubleTolerance);
    EXPECT_LE(relative_error(flash.dqkv, unfused.dqkv), kDoubleTolerance);
  }
}

// Scores far beyond exp's range (q and k scaled by 40: scores up to ~1600/√d) are what the
// online softmax's running max is for; the unfused kernel subtracts each row's max too.
TEST(FlashAttention, LargeScoresStayFinite) {
  const cpu::AttentionShape shape{1, 150, 2, 8};
  Vec qkv = random_vector(shape.seq * 3 * shape.heads * shape.head_dim, 7);
  for (double& x : qkv) x *= 40;
  const Vec dout = random_vector(shape.seq * shape.heads * shape.head_dim, 8);
  const AttentionResult unfused = run_unfused(qkv, dout, shape);
  const AttentionResult flash = run_flash(qkv, dout, shape);
  for (const Vec* v : {&flash.out, &flash.saved, &flash.dqkv})
    for (double x : *v) ASSERT_TRUE(std::isfinite(x));
  EXPECT_LE(relative_error(flash.out, unfused.out), 1e-10);
  EXPECT_LE(relative_error(flash.dqkv, unfused.dqkv), 1e-10);
}

// The flash backward is the derivative of the flash forward: dqkv against central differences of
// w · out(qkv), over a sequence of three tiles (the diagonal tiles, the ones left of them and a
// partial last one) and two heads.
TEST(FlashAttention, BackwardMatchesFiniteDifferences) {
  for (const cpu::AttentionShape& shape :
       {cpu::AttentionShape{2, 5, 2, 3}, cpu::AttentionShape{1, 131, 2, 2}}) {
    SCOPED_TRACE(describe_shape(shape));
    Vec qkv = random_vector(shape.batch * shape.seq * 3 * shape.heads * shape.head_dim, 21);
    const Vec w = random_vector(shape.batch * shape.seq * shape.heads * shape.head_dim, 22);
    Vec out(w.size()), log_sum_exp(shape.batch * shape.heads * shape.seq);
    auto forward = [&] {
      cpu::flash_attention_forward(qkv.data(), out.data(), log_sum_exp.data(), shape);
      return dot(w, out);
    };
    forward();
    Vec dqkv(qkv.size(), 7.0);
    cpu::flash_attention_backward(w.data(), qkv.data(), out.data(), log_sum_exp.data(), dqkv.data(),
                                  shape);
    expect_gradient(qkv, forward, dqkv);
  }
}

// The float Kernels of both backends agree to fp32 rounding, and flash's to its double template.
TEST_F(CpuKernelsTest, FlashAttentionKernelsMatchUnfusedInFloat) {
  uint32_t seed = 300;
  for (const cpu::AttentionShape& shape : flash_test_shapes()) {
    SCOPED_TRACE(describe_shape(shape));
    const int64_t b = shape.batch, s = shape.seq, heads = shape.heads, d = shape.head_dim;
    const Vec qkv = random_vector(b * s * 3 * heads * d, seed++);
    const Vec dout = random_vector(b * s * heads * d, seed++);
    const AttentionResult flash_double = run_flash(qkv, dout, shape);
    const Tensor qkvt = to_tensor(qkv, {b, s, 3 * heads * d}), doutt = to_tensor(dout, {b, s, heads * d});

    Tensor unfused_out({b, s, heads * d}, ElementType::f32, Device::cpu), probabilities({b, heads, s, s}, ElementType::f32, Device::cpu), unfused_dqkv({b, s, 3 * heads * d}, ElementType::f32, Device::cpu);
    kernels->attention_forward(qkvt, heads, unfused_out, probabilities);
    kernels->attention_backward(doutt, qkvt, probabilities, heads, unfused_dqkv);
    Tensor flash_out({b, s, heads * d}, ElementType::f32, Device::cpu), log_sum_exp({b, heads, s}, ElementType::f32, Device::cpu), flash_dqkv({b, s, 3 * heads * d}, ElementType::f32, Device::cpu);
    kernels->flash_attention_forward(qkvt, heads, flash_out, log_sum_exp);
    kernels->flash_attention_backward(doutt, qkvt, flash_out, log_sum_exp, heads, flash_dqkv);

    expect_float_close(flash_out, to_vec(unfused_out));
    expect_float_close(flash_dqkv, to_vec(unfused_dqkv));
    expect_float_close(flash_out, flash_double.out);
    expect_float_close(log_sum_exp, flash_double.saved);
    expect_float_close(flash_dqkv, flash_double.dqkv);
  }
}

// With several threads the heads run in parallel; each head's arithmetic is the same, so the
// results are bit for bit those of one thread.
TEST(FlashAttention, ThreadsDoNotChangeTheResult) {
  const int64_t b = 2, s = 100, heads = 4, d = 8;
  const Tensor qkv = to_tensor(random_vector(b * s * 3 * heads * d, 41), {b, s, 3 * heads * d});
  const Tensor dout = to_tensor(random_vector(b * s * heads * d, 42), {b, s, heads * d});
  auto run = [&](int threads) {
    std::unique_ptr<Kernels> kernels = make_cpu_kernels(threads);
    Tensor out({b, s, heads * d}, ElementType::f32, Device::cpu), log_sum_exp({b, heads, s}, ElementType::f32, Device::cpu), dqkv({b, s, 3 * heads * d}, ElementType::f32, Device::cpu);
    kernels->flash_attention_forward(qkv, heads, out, log_sum_exp);
    kernels->flash_attention_backward(dout, qkv, out, log_sum_exp, heads, dqkv);
    Vec all = to_vec(out);
    for (const Tensor* t : {&log_sum_exp, &dqkv}) {
      const Vec v = to_vec(*t);
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  const Vec one = run(1);
  const Vec two = run(2);
  make_cpu_kernels(1);  // the thread count is process-wide: leave it as the other tests expect
  EXPECT_EQ(one, two);
}

TEST_F(CpuKernelsTest, FlashAttentionRejectsAMisshapenLogSumExp) {
  const Tensor qkv({1, 8, 3 * 2 * 4}, ElementType::f32, Device::cpu);
  Tensor out({1, 8, 2 * 4}, ElementType::f32, Device::cpu), too_small({1, 2, 7}, ElementType::f32, Device::cpu), probabilities_shaped({1, 2, 8, 8}, ElementType::f32, Device::cpu);
  EXPECT_THROW(kernels->flash_attention_forward(qkv, 2, out, too_small), Error);
  Tensor dqkv({1, 8, 3 * 2 * 4}, ElementType::f32, Device::cpu);
  EXPECT_THROW(kernels->flash_attention_backward(out, qkv, out, probabilities_shaped, 2, dqkv), Error);
}

}  // namespace
}  // namespace loom::exec
