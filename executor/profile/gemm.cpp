// GEMMs through Kernels::matmul in the three layouts of the model code (gpt_layers.cpp):
//   nn  matmul(x, false, W, false, y)            forward         y[tokens, out] = x · W
//   nt  matmul(dy, false, W, true, dx)           data gradient   dx[tokens, in] = dy · Wᵀ
//   tn  matmul(x, true, dy, false, dW, 1, 1)     weight gradient dW[in, out] += xᵀ · dy
// A sample's (m, n, k) is C = m × n with reduction depth k, as the simulator looks them up.
// Operands are of profiled_type (bf16 on CUDA, as a bf16 plan's activations and weights), and so
// is C, except that of "tn": a weight gradient, accumulated into its fp32 main gradient.

#include "executor/profile/measure.hpp"
#include "executor/profile/random_tensors.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

namespace loom::exec::profile {
namespace {

struct LayoutAxes {
  core::GemmLayout layout;
  bool transpose_a, transpose_b;
  float beta;
  std::vector<int64_t> m, n, k;
};

std::vector<int64_t> joined(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Where each layout puts tokens, weight widths and the vocabulary (the logits GEMMs: "nt" forms
// tokens × vocabulary, "nn" its data gradient tokens × hidden over the vocabulary, "tn" the
// output weight's gradient vocabulary × hidden over the tokens).
std::vector<LayoutAxes> layout_axes(const ProfileGrid& g) {
  const std::vector<int64_t> widths_and_vocab = joined(g.gemm_widths, g.gemm_vocab);
  return {
      {core::GemmLayout::nn, false, false, 0.0f, g.gemm_tokens, g.gemm_widths, widths_and_vocab},
      {core::GemmLayout::nt, false, true, 0.0f, g.gemm_tokens, widths_and_vocab, g.gemm_widths},
      {core::GemmLayout::tn, true, false, 1.0f, widths_and_vocab, g.gemm_widths, g.gemm_tokens}};
}

// The first rows·cols values of a pool, as a [rows, cols] operand: one random fill per layout
// serves every shape of its grid.
Tensor view(const Tensor& pool, int64_t rows, int64_t cols) {
  return pool.rows(0, rows * cols).reshaped({rows, cols});
}

int64_t largest(const std::vector<int64_t>& values) {
  return *std::max_element(values.begin(), values.end());
}

}  // namespace

void measure_gemms(Kernels& kernels, const ProfileGrid& grid, Measured& measured) {
  RandomTensors random(kernels);
  KernelTimer timer(kernels, grid.timing);
  const ElementType type = profiled_type(kernels);
  for (const LayoutAxes& axes : layout_axes(grid)) {
    const double started = seconds_now();
    const int64_t max_m = largest(axes.m), max_n = largest(axes.n), max_k = largest(axes.k);
    const Tensor a_pool = random.uniform({max_m * max_k}, type), b_pool = random.uniform({max_k * max_n}, type);
    const ElementType c_type = axes.layout == core::GemmLayout::tn ? ElementType::f32 : type;
    const Tensor c_pool = random.uniform({max_m * max_n}, c_type);  // read too, by the accumulating "tn"
    double best = 0;
    std::string best_shape;
    for (int64_t m : axes.m)
      for (int64_t n : axes.n)
        for (int64_t k : axes.k) {
          const Tensor a = axes.transpose_a ? view(a_pool, k, m) : view(a_pool, m, k);
          const Tensor b = axes.transpose_b ? view(b_pool, n, k) : view(b_pool, k, n);
          Tensor c = view(c_pool, m, n);
          const Timing t =
              timer([&] { kernels.matmul(a, axes.transpose_a, b, axes.transpose_b, c, 1.0f, axes.beta); });
          measured.add(core::GemmSample{.m = m,
                                        .n = n,
                                        .k = k,
                                        .dtype = dtype_of(type),
                                        .time_s = t.median_s,
                                        .layout = axes.layout},
                       t.spread);
          const double rate = 2.0 * double(m) * double(n) * double(k) / t.median_s;
          if (rate > best) {
            best = rate;
            best_shape = fmt::format("{}×{}×{}", m, n, k);
          }
        }
    fmt::print("gemm {} ({}): {} × {} × {} shapes (m × n × k) in {:.1f} s, best {:.1f} GFLOP/s at {}\n",
               core::to_string(axes.layout), core::to_string(dtype_of(type)), axes.m.size(), axes.n.size(),
               axes.k.size(), seconds_now() - started, best / 1e9, best_shape);
    std::fflush(stdout);
  }
}

void measure_gemm_peak(Kernels& kernels, ElementType type, const TimingPolicy& policy, Measured& measured) {
  RandomTensors random(kernels);
  KernelTimer timer(kernels, policy);
  // Square forward GEMMs from where a GPU is nearly saturated to where it surely is.
  for (const int64_t size : {4096, 8192}) {
    const Tensor a = random.uniform({size, size}, type), b = random.uniform({size, size}, type);
    Tensor c({size, size}, type, kernels.device());
    const Timing t = timer([&] { kernels.matmul(a, false, b, false, c); });
    const double rate = 2.0 * double(size) * double(size) * double(size) / t.median_s;
    measured.add_gemm_rate(dtype_of(type), rate);
    fmt::print("gemm peak ({}): {}×{}×{} at {:.1f} GFLOP/s\n", core::to_string(dtype_of(type)), size, size, size,
               rate / 1e9);
  }
  std::fflush(stdout);
}

}  // namespace loom::exec::profile
