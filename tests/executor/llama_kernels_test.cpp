// Llama's CPU kernels: RMSNorm, SwiGLU, rotary positions and the expansion of grouped-query
// attention's key/value groups — every backward against central finite differences in double,
// forwards against direct formulas, the float Kernels against the double templates, and the
// front's refusals.

#include "kernels_test_support.hpp"

namespace loom::exec {
namespace {

using namespace kernel_testing;

TEST_F(CpuKernelsTest, RmsNormForwardAndBackward) {
  const int64_t rows = 3, cols = 7;
  const double eps = 1e-5;
  Vec x = random_vector(rows * cols, 21), gamma = random_vector(cols, 22);
  const Vec w = random_vector(rows * cols, 23);
  Vec rstd(rows);
  auto forward = [&] {
    Vec y(rows * cols);
    cpu::rmsnorm_forward(x.data(), gamma.data(), eps, y.data(), rstd.data(), rows, cols);
    return y;
  };
  const Vec y = forward();
  for (int64_t r = 0; r < rows; ++r) {
    double mean_square = 0;
    for (int64_t c = 0; c < cols; ++c) mean_square += x[r * cols + c] * x[r * cols + c] / cols;
    EXPECT_NEAR(rstd[r], 1 / std::sqrt(mean_square + eps), 1e-12);
    for (int64_t c = 0; c < cols; ++c)
      EXPECT_NEAR(y[r * cols + c], x[r * cols + c] / std::sqrt(mean_square + eps) * gamma[c], 1e-12);
  }
  const Vec dgamma0 = random_vector(cols, 24);  // dgamma accumulates
  Vec dx(rows * cols), dgamma = dgamma0;
  cpu::rmsnorm_backward(w.data(), x.data(), gamma.data(), rstd.data(), dx.data(), dgamma.data(), rows, cols);
  for (int64_t c = 0; c < cols; ++c) dgamma[c] -= dgamma0[c];
  auto loss = [&] { return dot(w, forward()); };
  expect_gradient(x, loss, dx);
  expect_gradient(gamma, loss, dgamma);

  Tensor yt({rows, cols}, ElementType::f32, Device::cpu), rt({rows}, ElementType::f32, Device::cpu);
  Tensor dxt({rows, cols}, ElementType::f32, Device::cpu), dgt = Tensor::zeros({cols}, ElementType::f32, Device::cpu);
  const Tensor xt = to_tensor(x, {rows, cols}), gt = to_tensor(gamma, {cols});
  kernels->rmsnorm_forward(xt, gt, float(eps), yt, rt);
  kernels->rmsnorm_backward(to_tensor(w, {rows, cols}), xt, gt, rt, dxt, dgt);
  expect_float_close(yt, y);
  expect_float_close(dxt, dx);
  expect_float_close(dgt, dgamma);
}

TEST_F(CpuKernelsTest, SwiGluForwardAndBackward) {
  const int64_t rows = 3, f = 5;
  Vec gate_up = random_vector(rows * 2 * f, 31);
  for (double& v : gate_up) v *= 4;  // reach the sigmoid's tails too
  const Vec w = random_vector(rows * f, 32);
  auto forward = [&] {
    Vec y(rows * f);
    cpu::swiglu_forward(gate_up.data(), y.data(), rows, f);
    return y;
  };
  const Vec y = forward();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < f; ++j) {
      const double g = gate_up[r * 2 * f + j], u = gate_up[r * 2 * f + f + j];
      EXPECT_NEAR(y[r * f + j], g / (1 + std::exp(-g)) * u, 1e-12);
    }
  Vec dgate_up(rows * 2 * f);
  cpu::swiglu_backward(w.data(), gate_up.data(), dgate_up.data(), rows, f);
  expect_gradient(gate_up, [&] { return dot(w, forward()); }, dgate_up);

  Tensor yt({rows, f}, ElementType::f32, Device::cpu), dt({rows, 2 * f}, ElementType::f32, Device::cpu);
  const Tensor gt = to_tensor(gate_up, {rows, 2 * f});
  kernels->swiglu_forward(gt, yt);
  kernels->swiglu_backward(to_tensor(w, {rows, f}), gt, dt);
  expect_float_close(yt, y);
  expect_float_close(dt, dgate_up);
  Tensor odd({rows, 2 * f - 1}, ElementType::f32, Device::cpu);
  EXPECT_THROW(kernels->swiglu_forward(odd, yt), Error);
}

// Hugging Face's apply_rotary_pos_emb written out for one vector: x·cos + rotate_half(x)·sin with
// rotate_half(x) = [−x2, x1] and the frequencies repeated over both halves.
Vec rotate_like_hugging_face(const Vec& x, int64_t position, double base) {
  const size_t d = x.size(), half = d / 2;
  Vec out(d);
  for (size_t j = 0; j < d; ++j) {
    const double angle = double(position) * std::pow(base, -2.0 * double(j % half) / double(d));
    const double rotated = j < half ? -x[j + half] : x[j - half];
    out[j] = x[j] * std::cos(angle) + rotated * std::sin(angle);
  }
  return out;
}

TEST_F(CpuKernelsTest, RotaryMatchesHuggingFacesRotateHalfAndInvertsExactly) {
  const cpu::GroupedShape shape{2, 5, 4, 2, 6};  // batch, seq, 4 query heads in 2 groups, d 6
  const int64_t width = (shape.heads + 2 * shape.kv_heads) * shape.head_dim;
  const double base = 10000;
  Vec qkv = random_vector(shape.batch * shape.seq * width, 41);
  const Vec original = qkv;
  auto forward = [&] {
    Vec out = qkv;
    cpu::rotary(out.data(), shape, base, /*inverse=*/false);
    return out;
  };
  const Vec rotated = forward();
  for (int64_t b = 0; b < shape.batch; ++b)
    for (int64_t p = 0; p < shape.seq; ++p)
      for (int64_t head = 0; head < shape.heads + 2 * shape.kv_heads; ++head) {
        const size_t begin = size_t(((b * shape.seq + p) * width) + head * shape.head_dim);
        const Vec x(original.begin() + begin, original.begin() + begin + shape.head_dim);
        const Vec got(rotated.begin() + begin, rotated.begin() + begin + shape.head_dim);
        // q heads and k groups turn; v groups stay as they were.
        const Vec expected = head < shape.heads + shape.kv_heads ? rotate_like_hugging_face(x, p, base) : x;
        EXPECT_LE(relative_error(got, expected), 1e-12) << "b " << b << " p " << p << " head " << head;
      }
  // The backward is the transpose of the forward's (linear) map: check it by finite differences.
  const Vec w = random_vector(qkv.size(), 42);
  Vec gradient = w;
  cpu::rotary(gradient.data(), shape, base, /*inverse=*/true);
  expect_gradient(qkv, [&] { return dot(w, forward()); }, gradient);
  // And the inverse undoes the forward.
  Vec back = rotated;
  cpu::rotary(back.data(), shape, base, /*inverse=*/true);
  EXPECT_LE(relative_error(back, original), 1e-12);

  // Float kernels against the double template, at Llama 3's base too.
  for (const double theta : {10000.0, 500000.0}) {
    Vec expected = original;
    cpu::rotary(expected.data(), shape, theta, false);
    Tensor t = to_tensor(original, {shape.batch, shape.seq, width});
    kernels->rotary_forward(t, shape.heads, shape.kv_heads, float(theta));
    expect_float_close(t, expected);
    kernels->rotary_backward(t, shape.heads, shape.kv_heads, float(theta));
    expect_float_close(t, original);
  }
  Tensor wrong({2, 5, width + 1}, ElementType::f32, Device::cpu);
  EXPECT_THROW(kernels->rotary_forward(wrong, shape.heads, shape.kv_heads, 10000.0f), Error);
  Tensor uneven = to_tensor(original, {shape.batch, shape.seq, width});
  EXPECT_THROW(kernels->rotary_forward(uneven, 3, 2, 10000.0f), Error);  // 3 heads cannot share 2 groups
}

TEST_F(CpuKernelsTest, QueryGroupsExpandAndReduceAreTransposes) {
  const cpu::GroupedShape shape{2, 3, 6, 2, 4};  // 6 query heads, 3 per group
  const int64_t grouped_width = (shape.heads + 2 * shape.kv_heads) * shape.head_dim;
  const int64_t full_width = 3 * shape.heads * shape.head_dim, rows = shape.batch * shape.seq;
  Vec grouped = random_vector(rows * grouped_width, 51);
  Vec full(rows * full_width);
  cpu::expand_query_groups(grouped.data(), full.data(), shape);
  const int64_t d = shape.head_dim, a = shape.heads, g = shape.kv_heads;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t head = 0; head < a; ++head)
      for (int64_t c = 0; c < d; ++c) {
        const int64_t group = head / (a / g);
        EXPECT_EQ(full[r * full_width + head * d + c], grouped[r * grouped_width + head * d + c]);
        EXPECT_EQ(full[r * full_width + (a + head) * d + c], grouped[r * grouped_width + (a + group) * d + c]);
        EXPECT_EQ(full[r * full_width + (2 * a + head) * d + c],
                  grouped[r * grouped_width + (a + g + group) * d + c]);
      }
  // reduce is expand's transpose: ⟨expand(x), w⟩ = ⟨x, reduce(w)⟩ for every x, so the finite
  // differences of the former are the latter.
  const Vec w = random_vector(rows * full_width, 52);
  Vec reduced(rows * grouped_width, 99.0);  // overwritten, not accumulated
  cpu::reduce_query_groups(w.data(), reduced.data(), shape);
  expect_gradient(grouped, [&] {
    Vec out(rows * full_width);
    cpu::expand_query_groups(grouped.data(), out.data(), shape);
    return dot(w, out);
  }, reduced);

  Tensor ft({shape.batch, shape.seq, full_width}, ElementType::f32, Device::cpu);
  Tensor gt({shape.batch, shape.seq, grouped_width}, ElementType::f32, Device::cpu);
  kernels->expand_query_groups(to_tensor(grouped, {shape.batch, shape.seq, grouped_width}), a, g, ft);
  expect_float_close(ft, full);
  kernels->reduce_query_groups(to_tensor(w, {shape.batch, shape.seq, full_width}), a, g, gt);
  expect_float_close(gt, reduced);
  Tensor small({shape.batch, shape.seq, full_width - d}, ElementType::f32, Device::cpu);
  EXPECT_THROW(kernels->expand_query_groups(gt, a, g, small), Error);
}

}  // namespace
}  // namespace loom::exec
