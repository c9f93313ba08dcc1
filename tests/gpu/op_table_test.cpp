// The op table (in the style of ggml's test-backend-ops): every kernel of the Kernels interface
// run through the interface on the CUDA backend and on the CPU backend (the reference) with the
// same fresh random inputs — never zeros; outputs poisoned with NaNs first — and compared by
// normalised error with a tolerance per op and element type. In bf16 both backends get inputs
// already rounded to bf16; the CPU computes from them in f32, so the tolerance bounds the GPU's
// bf16 rounding of its outputs and intermediates only.

#include "executor/kernels/backend.hpp"
#include "gpu_test_support.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <numeric>

namespace loom::exec::gpu_tests {
namespace {

// One op's run on one backend: builds its inputs in `type` from fixed seeds, runs the kernel(s),
// returns every output (concatenated) as f32 on the host.
using OpRun = std::function<Values(Kernels&, ElementType)>;

struct OpCase {
  std::string name;
  double f32_tolerance;
  double bf16_tolerance;  // 0: the op has no bf16 form
  OpRun run;
};

// Whether the run in progress is a bf16 case: then both backends' inputs are rounded to bf16,
// the CPU's held in f32 tensors (it computes in f32 only) and the GPU's in bf16 ones.
bool g_bf16_case = false;

// Inputs of activations and working weights (`type` is the tensor's).
Values inputs(size_t count, uint32_t seed, ElementType /*type*/, float scale = 1.0f) {
  Values v = random_values(count, seed, scale);
  return g_bf16_case ? rounded_to_bf16(std::move(v)) : v;
}

void append(Values& all, const Values& more) { all.insert(all.end(), more.begin(), more.end()); }

Values run_matmul(Kernels& k, ElementType t, bool ta, bool tb, ElementType c_type, float beta) {
  const int64_t m = 67, n = 45, kk = 96;
  Tensor a = on_device(k, inputs(size_t(m * kk), 1, t), ta ? std::vector<int64_t>{kk, m} : std::vector<int64_t>{m, kk}, t);
  Tensor b = on_device(k, inputs(size_t(kk * n), 2, t), tb ? std::vector<int64_t>{n, kk} : std::vector<int64_t>{kk, n}, t);
  Tensor c = beta != 0 ? on_device(k, inputs(size_t(m * n), 3, c_type), {m, n}, c_type) : poisoned(k, {m, n}, c_type);
  k.matmul(a, ta, b, tb, c, 0.75f, beta);
  return to_host(k, c);
}

Values run_layernorm(Kernels& k, ElementType t) {
  const int64_t rows = 37, cols = 200;
  Tensor x = on_device(k, inputs(size_t(rows * cols), 4, t, 2.0f), {rows, cols}, t);
  Tensor gamma = on_device(k, inputs(size_t(cols), 5, t), {cols}, t);
  Tensor beta = on_device(k, inputs(size_t(cols), 6, t), {cols}, t);
  Tensor y = poisoned(k, {rows, cols}, t), mean = poisoned(k, {rows}, ElementType::f32),
         rstd = poisoned(k, {rows}, ElementType::f32);
  k.layernorm_forward(x, gamma, beta, 1e-5f, y, mean, rstd);
  Tensor dy = on_device(k, inputs(size_t(rows * cols), 7, t), {rows, cols}, t);
  Tensor dx = poisoned(k, {rows, cols}, t);
  Tensor dgamma = on_device(k, random_values(size_t(cols), 8), {cols}, ElementType::f32);
  Tensor dbeta = on_device(k, random_values(size_t(cols), 9), {cols}, ElementType::f32);
  k.layernorm_backward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
  Values out = to_host(k, y);
  for (const Tensor* r : {&mean, &rstd, &dx, &dgamma, &dbeta}) append(out, to_host(k, *r));
  return out;
}

Values run_gelu(Kernels& k, ElementType t) {
  const int64_t n = 4099;  // not a multiple of any vector width
  Tensor x = on_device(k, inputs(size_t(n), 10, t, 2.0f), {n}, t);
  Tensor y = poisoned(k, {n}, t), dx = poisoned(k, {n}, t);
  k.gelu_forward(x, y);
  Tensor dy = on_device(k, inputs(size_t(n), 11, t), {n}, t);
  k.gelu_backward(dy, x, dx);
  Values out = to_host(k, y);
  append(out, to_host(k, dx));
  return out;
}

// Each Llama op at one width that takes 16-byte vectors in f32 and bf16 and one that takes none.
Values run_rmsnorm(Kernels& k, ElementType t) {
  Values out;
  for (const int64_t cols : {200, 67}) {
    const int64_t rows = 37;
    Tensor x = on_device(k, inputs(size_t(rows * cols), 27, t, 2.0f), {rows, cols}, t);
    Tensor gamma = on_device(k, inputs(size_t(cols), 28, t), {cols}, t);
    Tensor y = poisoned(k, {rows, cols}, t), rstd = poisoned(k, {rows}, ElementType::f32);
    k.rmsnorm_forward(x, gamma, 1e-5f, y, rstd);
    Tensor dy = on_device(k, inputs(size_t(rows * cols), 29, t), {rows, cols}, t);
    Tensor dx = poisoned(k, {rows, cols}, t);
    Tensor dgamma = on_device(k, random_values(size_t(cols), 30), {cols}, ElementType::f32);
    k.rmsnorm_backward(dy, x, gamma, rstd, dx, dgamma);
    for (const Tensor* r : {&y, &rstd, &dx, &dgamma}) append(out, to_host(k, *r));
  }
  return out;
}

Values run_swiglu(Kernels& k, ElementType t) {
  Values out;
  for (const int64_t f : {136, 67}) {
    const int64_t rows = 29;
    Tensor gate_up = on_device(k, inputs(size_t(rows * 2 * f), 31, t, 2.0f), {rows, 2 * f}, t);
    Tensor y = poisoned(k, {rows, f}, t);
    k.swiglu_forward(gate_up, y);
    Tensor dy = on_device(k, inputs(size_t(rows * f), 32, t), {rows, f}, t);
    Tensor dgate_up = poisoned(k, {rows, 2 * f}, t);
    k.swiglu_backward(dy, gate_up, dgate_up);
    append(out, to_host(k, y));
    append(out, to_host(k, dgate_up));
  }
  return out;
}

// Grouped qkv with 6 query heads in 2 groups; d/2 = 24 pairs, fewer than a warp. The whole tensor
// is compared, so v must come back untouched.
Values run_rotary(Kernels& k, ElementType t) {
  const int64_t b = 2, s = 300, heads = 6, groups = 2, d = 48, width = (heads + 2 * groups) * d;
  Tensor qkv = on_device(k, inputs(size_t(b * s * width), 33, t), {b, s, width}, t);
  k.rotary_forward(qkv, heads, groups, 10000.0f);
  Tensor dqkv = on_device(k, inputs(size_t(b * s * width), 34, t), {b, s, width}, t);
  k.rotary_backward(dqkv, heads, groups, 500000.0f);
  Values out = to_host(k, qkv);
  append(out, to_host(k, dqkv));
  return out;
}

Values run_query_groups(Kernels& k, ElementType t) {
  Values out;
  for (const int64_t d : {16, 10}) {
    const int64_t b = 2, s = 33, heads = 6, groups = 2;
    const int64_t grouped_width = (heads + 2 * groups) * d, full_width = 3 * heads * d;
    Tensor grouped = on_device(k, inputs(size_t(b * s * grouped_width), 35, t), {b, s, grouped_width}, t);
    Tensor full = poisoned(k, {b, s, full_width}, t);
    k.expand_query_groups(grouped, heads, groups, full);
    Tensor dfull = on_device(k, inputs(size_t(b * s * full_width), 36, t), {b, s, full_width}, t);
    Tensor dgrouped = poisoned(k, {b, s, grouped_width}, t);
    k.reduce_query_groups(dfull, heads, groups, dgrouped);
    append(out, to_host(k, full));
    append(out, to_host(k, dgrouped));
  }
  return out;
}

Values run_bias_and_add(Kernels& k, ElementType t) {
  const int64_t rows = 53, cols = 130;
  Tensor x = on_device(k, inputs(size_t(rows * cols), 12, t), {rows, cols}, t);
  Tensor bias = on_device(k, inputs(size_t(cols), 13, t), {cols}, t);
  k.add_bias(x, bias);
  Tensor dbias = on_device(k, random_values(size_t(cols), 14), {cols}, ElementType::f32);
  k.bias_backward(x, dbias);
  Tensor other = on_device(k, inputs(size_t(rows * cols), 15, t), {rows, cols}, t);
  Tensor sum = poisoned(k, {rows, cols}, t);
  k.add(x, other, sum);
  k.scale(sum, -0.5f);
  Values out = to_host(k, x);
  append(out, to_host(k, dbias));
  append(out, to_host(k, sum));
  return out;
}

Values run_attention(Kernels& k, ElementType t, bool flash) {
  const int64_t b = 2, s = 77, heads = 3, d = 64;
  Tensor qkv = on_device(k, inputs(size_t(b * s * 3 * heads * d), 16, t), {b, s, 3 * heads * d}, t);
  Tensor out = poisoned(k, {b, s, heads * d}, t), dqkv = poisoned(k, {b, s, 3 * heads * d}, t);
  Tensor dout = on_device(k, inputs(size_t(b * s * heads * d), 17, t), {b, s, heads * d}, t);
  if (flash) {
    Tensor lse = poisoned(k, {b, heads, s}, ElementType::f32);
    k.flash_attention_forward(qkv, heads, out, lse);
    k.flash_attention_backward(dout, qkv, out, lse, heads, dqkv);
    Values all = to_host(k, out);
    append(all, to_host(k, lse));
    append(all, to_host(k, dqkv));
    return all;
  }
  Tensor probabilities = poisoned(k, {b, heads, s, s}, t);
  k.attention_forward(qkv, heads, out, probabilities);
  k.attention_backward(dout, qkv, probabilities, heads, dqkv);
  Values all = to_host(k, out);
  append(all, to_host(k, probabilities));
  append(all, to_host(k, dqkv));
  return all;
}

Values run_vocabulary(Kernels& k, ElementType t) {
  const int64_t n = 61, shard = 300, cols = 48, vocab_start = 300;
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tokens[size_t(i)] = int32_t((i * 37) % 900);  // some outside the shard
  Tensor token_ids = int_tensor(k, tokens);
  Tensor table = on_device(k, inputs(size_t(shard * cols), 18, t), {shard, cols}, t);
  Tensor embedded = poisoned(k, {n, cols}, t);
  k.embedding_forward(token_ids, table, vocab_start, embedded);
  Tensor dtable = on_device(k, random_values(size_t(shard * cols), 19), {shard, cols}, ElementType::f32);
  Tensor dout = on_device(k, inputs(size_t(n * cols), 20, t), {n, cols}, t);
  k.embedding_backward(dout, token_ids, vocab_start, dtable);
  Tensor logits = on_device(k, inputs(size_t(n * shard), 21, t, 3.0f), {n, shard}, t);
  Tensor row_max = poisoned(k, {n}, ElementType::f32), sum_exp = poisoned(k, {n}, ElementType::f32),
         target_logit = poisoned(k, {n}, ElementType::f32);
  k.cross_entropy_partials(logits, token_ids, vocab_start, row_max, sum_exp, target_logit);
  Tensor dlogits = poisoned(k, {n, shard}, t);
  k.cross_entropy_backward(logits, token_ids, vocab_start, row_max, sum_exp, 0.125f, dlogits);
  Values out = to_host(k, embedded);
  for (const Tensor* r : {&dtable, &row_max, &sum_exp, &target_logit, &dlogits}) append(out, to_host(k, *r));
  return out;
}

// AdamW on f32 masters (with a bf16 working copy on the GPU in bf16 mode), the weighted sum of
// squares and the casts. The CPU has no bf16 working copy: its masters are compared, and the GPU's
// copy must equal its own masters rounded.
Values run_optimizer(Kernels& k, ElementType t) {
  const int64_t n = 5003;
  Tensor master = on_device(k, random_values(size_t(n), 22), {n}, ElementType::f32);
  Tensor grad = on_device(k, random_values(size_t(n), 23), {n}, ElementType::f32);
  Tensor m = on_device(k, random_values(size_t(n), 24, 0.1f), {n}, ElementType::f32);
  Values v_values = random_values(size_t(n), 25, 0.1f);
  for (float& x : v_values) x = x * x;
  Tensor v = on_device(k, v_values, {n}, ElementType::f32);
  const bool working = t == ElementType::bf16 && k.computes_in(ElementType::bf16);
  Tensor copy = working ? poisoned(k, {n}, ElementType::bf16) : Tensor();
  k.adamw(master, grad, m, v, AdamWSettings{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3}, working ? &copy : nullptr);
  Values out = to_host(k, master);
  append(out, to_host(k, m));
  append(out, to_host(k, v));
  if (working) {
    const Values rounded = rounded_to_bf16(out);
    const Values copied = to_host(k, copy);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(copied[size_t(i)], rounded[size_t(i)]) << "working copy element " << i;
  }
  Values weights(static_cast<size_t>(n), 0.0f);
  for (int64_t i = 0; i < n; ++i) weights[size_t(i)] = float(i % 3 != 0);
  Tensor x = on_device(k, inputs(size_t(n), 26, t), {n}, t);
  Tensor w = on_device(k, weights, {n}, ElementType::f32);
  out.push_back(float(k.sum_of_squares(x)));
  out.push_back(float(k.sum_of_squares(x, &w)));
  return out;
}

std::vector<OpCase> op_table() {
  std::vector<OpCase> ops;
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      ops.push_back({std::string("matmul_") + (ta ? "T" : "N") + (tb ? "T" : "N"), 1e-5, 1e-2,
                     [ta, tb](Kernels& k, ElementType t) { return run_matmul(k, t, ta, tb, t, 0.0f); }});
  ops.push_back({"matmul_accumulate_into_f32", 1e-5, 1e-2,
                 [](Kernels& k, ElementType t) { return run_matmul(k, t, true, false, ElementType::f32, 1.0f); }});
  ops.push_back({"layernorm", 1e-5, 2e-2, run_layernorm});
  ops.push_back({"gelu", 1e-5, 1e-2, run_gelu});
  ops.push_back({"rmsnorm", 1e-5, 2e-2, run_rmsnorm});
  ops.push_back({"swiglu", 1e-5, 1e-2, run_swiglu});
  ops.push_back({"rotary", 1e-5, 1e-2, run_rotary});
  ops.push_back({"query_groups", 1e-6, 1e-2, run_query_groups});
  ops.push_back({"bias_add_scale", 1e-6, 1e-2, run_bias_and_add});
  ops.push_back({"attention_unfused", 1e-5, 2e-2, [](Kernels& k, ElementType t) { return run_attention(k, t, false); }});
  ops.push_back({"attention_flash", 1e-5, 2e-2, [](Kernels& k, ElementType t) { return run_attention(k, t, true); }});
  ops.push_back({"embedding_cross_entropy", 1e-5, 2e-2, run_vocabulary});
  ops.push_back({"adamw_sum_of_squares", 1e-6, 1e-2, run_optimizer});
  return ops;
}

struct OpParam {
  OpCase op;
  ElementType type;
};

std::vector<OpParam> op_params() {
  std::vector<OpParam> params;
  for (const OpCase& op : op_table()) {
    params.push_back({op, ElementType::f32});
    if (op.bf16_tolerance > 0) params.push_back({op, ElementType::bf16});
  }
  return params;
}

class OpTable : public ::testing::TestWithParam<OpParam> {};

TEST_P(OpTable, CudaMatchesTheCpuReference) {
  LOOM_REQUIRE_CUDA_DEVICE();
  static std::unique_ptr<Kernels> cuda = make_kernels(Backend::cuda, 1, 0);
  static std::unique_ptr<Kernels> cpu = make_kernels(Backend::cpu, 1, 0);
  const OpParam& p = GetParam();
  g_bf16_case = p.type == ElementType::bf16;
  const Values expected = p.op.run(*cpu, ElementType::f32);
  const Values actual = p.op.run(*cuda, p.type);
  const double tolerance = p.type == ElementType::bf16 ? p.op.bf16_tolerance : p.op.f32_tolerance;
  EXPECT_LE(normalized_error(actual, expected), tolerance) << p.op.name << " in " << to_string(p.type);
}

INSTANTIATE_TEST_SUITE_P(Kernels, OpTable, ::testing::ValuesIn(op_params()),
                         [](const ::testing::TestParamInfo<OpParam>& info) {
                           return info.param.op.name + "_" + std::string(to_string(info.param.type));
                         });

}  // namespace
}  // namespace loom::exec::gpu_tests
