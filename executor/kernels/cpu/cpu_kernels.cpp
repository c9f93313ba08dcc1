// The CPU Kernels: checks each call's tensors (a wrong shape here is a bug in the caller, and a
// clear error beats silently writing past a buffer), then runs the float instantiation of the
// templates in cpu_math.hpp.

#include "core/error.hpp"
#include "executor/kernels/cpu/cpu_math.hpp"
#include "executor/kernels/cpu/eigen_maps.hpp"  // Eigen::setNbThreads
#include "executor/kernels/kernels.hpp"

#include <cstring>
#include <initializer_list>

namespace loom::exec {
namespace {

// A tensor seen as a matrix: every axis but the last folded into rows.
struct Folded {
  int64_t rows = 1;
  int64_t cols = 1;
};
Folded fold(const Tensor& t) {
  Folded folded;
  for (size_t axis = 0; axis + 1 < t.rank(); ++axis) folded.rows *= t.dim(axis);
  if (t.rank() > 0) folded.cols = t.dim(t.rank() - 1);
  return folded;
}

void expect_type(const char* kernel, const char* name, const Tensor& t, ElementType type) {
  if (!t.defined()) throw Error("{}: {} is an undefined tensor", kernel, name);
  if (t.device() != Device::cpu) throw Error("{}: {} is not on the CPU", kernel, name);
  if (t.type() != type) {
    throw Error("{}: {} holds {}, expected {}", kernel, name, to_string(t.type()), to_string(type));
  }
}
void expect_f32(const char* kernel, const char* name, const Tensor& t) {
  expect_type(kernel, name, t, ElementType::f32);
}
void expect_f32(const char* kernel, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) expect_f32(kernel, "an argument", *t);
}

void expect_numel(const char* kernel, const char* name, const Tensor& t, int64_t numel) {
  if (t.numel() != numel) {
    throw Error("{}: {} has shape {} ({} elements), expected {} elements", kernel, name,
                t.shape_string(), t.numel(), numel);
  }
}

void expect_cols(const char* kernel, const char* name, const Tensor& t, int64_t cols) {
  if (fold(t).cols != cols) {
    throw Error("{}: {} has shape {}, expected a last axis of {}", kernel, name, t.shape_string(),
                cols);
  }
}

bool overlaps(const Tensor& x, const Tensor& y) {
  const char* x_begin = x.data<char>();
  const char* y_begin = y.data<char>();
  return x_begin < y_begin + y.bytes() && y_begin < x_begin + x.bytes();
}

class CpuKernels final : public Kernels {
 public:
  Device device() const override { return Device::cpu; }

  void matmul(const Tensor& a, bool transpose_a, const Tensor& b, bool transpose_b, Tensor& c,
              float alpha, float beta) override {
    expect_f32("matmul", "a", a);
    expect_f32("matmul", "b", b);
    expect_f32("matmul", "c", c);
    const Folded fa = fold(a), fb = fold(b), fc = fold(c);
    const int64_t m = transpose_a ? fa.cols : fa.rows;
    const int64_t k = transpose_a ? fa.rows : fa.cols;
    const int64_t n = transpose_b ? fb.rows : fb.cols;
    const int64_t k_b = transpose_b ? fb.cols : fb.rows;
    if (k != k_b || fc.rows != m || fc.cols != n) {
      throw Error("matmul: op(a) [{}, {}] · op(b) [{}, {}] does not fit c {}", m, k, k_b, n,
                  c.shape_string());
    }
    if (overlaps(c, a) || overlaps(c, b)) throw Error("matmul: c overlaps an operand");
    cpu::matmul(a.data<float>(), transpose_a, b.data<float>(), transpose_b, c.data<float>(), m, n,
                k, alpha, beta);
  }

  void add_bias(Tensor& x, const Tensor& bias) override {
    expect_f32("add_bias", "x", x);
    expect_f32("add_bias", "bias", bias);
    const Folded fx = fold(x);
    expect_numel("add_bias", "bias", bias, fx.cols);
    cpu::add_bias(x.data<float>(), bias.data<float>(), fx.rows, fx.cols);
  }

  void bias_backward(const Tensor& dy, Tensor& dbias) override {
    expect_f32("bias_backward", "dy", dy);
    expect_f32("bias_backward", "dbias", dbias);
    const Folded fd = fold(dy);
    expect_numel("bias_backward", "dbias", dbias, fd.cols);
    cpu::bias_backward(dy.data<float>(), dbias.data<float>(), fd.rows, fd.cols);
  }

  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    expect_f32("add", "a", a);
    expect_f32("add", "b", b);
    expect_f32("add", "out", out);
    expect_numel("add", "b", b, a.numel());
    expect_numel("add", "out", out, a.numel());
    cpu::add(a.data<float>(), b.data<float>(), out.data<float>(), a.numel());
  }

  void layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                         Tensor& y, Tensor& mean, Tensor& rstd) override {
    expect_f32("layernorm_forward", {&x, &gamma, &beta, &y, &mean, &rstd});
    const Folded fx = fold(x);
    expect_numel("layernorm_forward", "gamma", gamma, fx.cols);
    expect_numel("layernorm_forward", "beta", beta, fx.cols);
    expect_numel("layernorm_forward", "y", y, x.numel());
    expect_numel("layernorm_forward", "mean", mean, fx.rows);
    expect_numel("layernorm_forward", "rstd", rstd, fx.rows);
    cpu::layernorm_forward(x.data<float>(), gamma.data<float>(), beta.data<float>(), eps,
                           y.data<float>(), mean.data<float>(), rstd.data<float>(), fx.rows,
                           fx.cols);
  }

  void layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                          const Tensor& mean, const Tensor& rstd, Tensor& dx, Tensor& dgamma,
                          Tensor& dbeta) override {
    expect_f32("layernorm_backward", {&dy, &x, &gamma, &mean, &rstd, &dx, &dgamma, &dbeta});
    const Folded fx = fold(x);
    expect_numel("layernorm_backward", "dy", dy, x.numel());
    expect_numel("layernorm_backward", "dx", dx, x.numel());
    for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &dgamma, &dbeta}) {
      expect_numel("layernorm_backward", "a norm parameter", *t, fx.cols);
    }
    expect_numel("layernorm_backward", "mean", mean, fx.rows);
    expect_numel("layernorm_backward", "rstd", rstd, fx.rows);
    cpu::layernorm_backward(dy.data<float>(), x.data<float>(), gamma.data<float>(),
                            mean.data<float>(), rstd.data<float>(), dx.data<float>(),
                            dgamma.data<float>(), dbeta.data<float>(), fx.rows, fx.cols);
  }

  void gelu_forward(const Tensor& x, Tensor& y) override {
    expect_f32("gelu_forward", "x", x);
    expect_f32("gelu_forward", "y", y);
    expect_numel("gelu_forward", "y", y, x.numel());
    cpu::gelu_forward(x.data<float>(), y.data<float>(), x.numel());
  }

  void gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) override {
    expect_f32("gelu_backward", "dy", dy);
    expect_f32("gelu_backward", "x", x);
    expect_f32("gelu_backward", "dx", dx);
    expect_numel("gelu_backward", "dy", dy, x.numel());
    expect_numel("gelu_backward", "dx", dx, x.numel());
    cpu::gelu_backward(dy.data<float>(), x.data<float>(), dx.data<float>(), x.numel());
  }

  void attention_forward(const Tensor& qkv, int64_t heads, Tensor& out,
                         Tensor& probabilities) override {
    expect_f32("attention_forward", "out", out);
    expect_f32("attention_forward", "probabilities", probabilities);
    const cpu::AttentionShape shape = attention_shape("attention_forward", qkv, heads);
    expect_numel("attention_forward", "out", out, qkv.numel() / 3);
    expect_numel("attention_forward", "probabilities", probabilities,
                 shape.batch * shape.heads * shape.seq * shape.seq);
    cpu::attention_forward(qkv.data<float>(), out.data<float>(), probabilities.data<float>(),
                           shape);
  }

  void attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& probabilities,
                          int64_t heads, Tensor& dqkv) override {
    expect_f32("attention_backward", "dout", dout);
    expect_f32("attention_backward", "probabilities", probabilities);
    expect_f32("attention_backward", "dqkv", dqkv);
    const cpu::AttentionShape shape = attention_shape("attention_backward", qkv, heads);
    expect_numel("attention_backward", "dout", dout, qkv.numel() / 3);
    expect_numel("attention_backward", "probabilities", probabilities,
                 shape.batch * shape.heads * shape.seq * shape.seq);
    expect_numel("attention_backward", "dqkv", dqkv, qkv.numel());
    cpu::attention_backward(dout.data<float>(), qkv.data<float>(), probabilities.data<float>(),
                            dqkv.data<float>(), shape);
  }

  void flash_attention_forward(const Tensor& qkv, int64_t heads, Tensor& out,
                               Tensor& log_sum_exp) override {
    expect_f32("flash_attention_forward", "out", out);
    expect_f32("flash_attention_forward", "log_sum_exp", log_sum_exp);
    const cpu::AttentionShape shape = attention_shape("flash_attention_forward", qkv, heads);
    expect_numel("flash_attention_forward", "out", out, qkv.numel() / 3);
    expect_numel("flash_attention_forward", "log_sum_exp", log_sum_exp,
                 shape.batch * shape.heads * shape.seq);
    cpu::flash_attention_forward(qkv.data<float>(), out.data<float>(), log_sum_exp.data<float>(),
                                 shape);
  }

  void flash_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out,
                                const Tensor& log_sum_exp, int64_t heads, Tensor& dqkv) override {
    expect_f32("flash_attention_backward", {&dout, &out, &log_sum_exp, &dqkv});
    const cpu::AttentionShape shape = attention_shape("flash_attention_backward", qkv, heads);
    expect_numel("flash_attention_backward", "dout", dout, qkv.numel() / 3);
    expect_numel("flash_attention_backward", "out", out, qkv.numel() / 3);
    expect_numel("flash_attention_backward", "log_sum_exp", log_sum_exp,
                 shape.batch * shape.heads * shape.seq);
    expect_numel("flash_attention_backward", "dqkv", dqkv, qkv.numel());
    cpu::flash_attention_backward(dout.data<float>(), qkv.data<float>(), out.data<float>(),
                                  log_sum_exp.data<float>(), dqkv.data<float>(), shape);
  }

  void embedding_forward(const Tensor& tokens, const Tensor& table, int64_t vocab_start,
                         Tensor& out) override {
    expect_type("embedding_forward", "tokens", tokens, ElementType::i32);
    expect_f32("embedding_forward", "table", table);
    expect_f32("embedding_forward", "out", out);
    const Folded ft = fold(table);
    expect_numel("embedding_forward", "out", out, tokens.numel() * ft.cols);
    expect_cols("embedding_forward", "out", out, ft.cols);
    cpu::embedding_forward(tokens.data<int32_t>(), table.data<float>(), vocab_start, ft.rows,
                           out.data<float>(), tokens.numel(), ft.cols);
  }

  void embedding_backward(const Tensor& dout, const Tensor& tokens, int64_t vocab_start,
                          Tensor& dtable) override {
    expect_f32("embedding_backward", "dout", dout);
    expect_type("embedding_backward", "tokens", tokens, ElementType::i32);
    expect_f32("embedding_backward", "dtable", dtable);
    const Folded ft = fold(dtable);
    expect_numel("embedding_backward", "dout", dout, tokens.numel() * ft.cols);
    expect_cols("embedding_backward", "dout", dout, ft.cols);
    cpu::embedding_backward(dout.data<float>(), tokens.data<int32_t>(), vocab_start, ft.rows,
                            dtable.data<float>(), tokens.numel(), ft.cols);
  }

  void cross_entropy_partials(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                              Tensor& row_max, Tensor& sum_exp, Tensor& target_logit) override {
    expect_f32("cross_entropy_partials", "logits", logits);
    expect_type("cross_entropy_partials", "targets", targets, ElementType::i32);
    const Folded fl = fold(logits);
    expect_numel("cross_entropy_partials", "targets", targets, fl.rows);
    for (const Tensor* t :
         std::initializer_list<const Tensor*>{&row_max, &sum_exp, &target_logit}) {
      expect_f32("cross_entropy_partials", "a per-row result", *t);
      expect_numel("cross_entropy_partials", "a per-row result", *t, fl.rows);
    }
    cpu::cross_entropy_partials(logits.data<float>(), targets.data<int32_t>(), vocab_start,
                                row_max.data<float>(), sum_exp.data<float>(),
                                target_logit.data<float>(), fl.rows, fl.cols);
  }

  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                              const Tensor& global_max, const Tensor& global_sum_exp, float scale,
                              Tensor& dlogits) override {
    expect_f32("cross_entropy_backward", "logits", logits);
    expect_type("cross_entropy_backward", "targets", targets, ElementType::i32);
    expect_f32("cross_entropy_backward", "dlogits", dlogits);
    const Folded fl = fold(logits);
    expect_numel("cross_entropy_backward", "targets", targets, fl.rows);
    expect_numel("cross_entropy_backward", "dlogits", dlogits, logits.numel());
    for (const Tensor* t : {&global_max, &global_sum_exp}) {
      expect_f32("cross_entropy_backward", "a global statistic", *t);
      expect_numel("cross_entropy_backward", "a global statistic", *t, fl.rows);
    }
    cpu::cross_entropy_backward(logits.data<float>(), targets.data<int32_t>(), vocab_start,
                                global_max.data<float>(), global_sum_exp.data<float>(), scale,
                                dlogits.data<float>(), fl.rows, fl.cols);
  }

  void adamw(Tensor& parameter, const Tensor& gradient, Tensor& m, Tensor& v, float lr, float beta1,
             float beta2, float eps, float weight_decay, int64_t step) override {
    for (const Tensor* t : std::initializer_list<const Tensor*>{&parameter, &gradient, &m, &v}) {
      expect_f32("adamw", "an argument", *t);
      expect_numel("adamw", "a gradient or moment", *t, parameter.numel());
    }
    if (step < 1) throw Error("adamw: step {} does not count from 1", step);
    cpu::adamw(parameter.data<float>(), gradient.data<float>(), m.data<float>(), v.data<float>(),
               parameter.numel(),
               cpu::AdamWSettings<float>{lr, beta1, beta2, eps, weight_decay, step});
  }

  double sum_of_squares(const Tensor& x) override {
    expect_f32("sum_of_squares", "x", x);
    return cpu::sum_of_squares(x.data<float>(), x.numel());
  }

  void scale(Tensor& x, float factor) override {
    expect_f32("scale", "x", x);
    cpu::scale(x.data<float>(), factor, x.numel());
  }

  void copy(const Tensor& from, Tensor& to) override {
    expect_type("copy", "from", from, from.type());
    expect_type("copy", "to", to, from.type());
    expect_numel("copy", "to", to, from.numel());
    std::memmove(to.data<char>(), from.data<char>(), from.bytes());
  }

 private:
  static cpu::AttentionShape attention_shape(const char* kernel, const Tensor& qkv, int64_t heads) {
    expect_f32(kernel, "qkv", qkv);
    if (qkv.rank() != 3 || heads < 1 || qkv.dim(2) % (3 * heads) != 0) {
      throw Error("{}: qkv {} is not [batch, seq, 3·heads·head_dim] for {} heads", kernel,
                  qkv.shape_string(), heads);
    }
    return cpu::AttentionShape{qkv.dim(0), qkv.dim(1), heads, qkv.dim(2) / (3 * heads)};
  }
};

}  // namespace

// Eigen's GEMM threads come from OpenMP when Loom is built with it; the setting is process-wide.
std::unique_ptr<Kernels> make_cpu_kernels(int threads) {
  if (threads < 1) throw InvalidInput("the CPU kernels need at least 1 thread, not {}", threads);
  Eigen::setNbThreads(threads);
  return std::make_unique<CpuKernels>();
}

}  // namespace loom::exec
