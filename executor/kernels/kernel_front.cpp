// The checking front of Kernels (kernels.hpp): every call's tensors are checked here, the same
// for every backend — a wrong shape or type is a bug in the caller, and a clear error beats
// silently writing past a buffer or reading bf16 bits as floats.

#include "core/error.hpp"
#include "executor/kernels/kernels.hpp"

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

std::string_view device_name(Device device) {
  return device == Device::cpu ? "the CPU" : "the CUDA device";
}

bool overlaps(const Tensor& x, const Tensor& y) {
  if (x.device() != y.device()) return false;
  const char* x_begin = x.data<char>();
  const char* y_begin = y.data<char>();
  return x_begin < y_begin + y.bytes() && y_begin < x_begin + x.bytes();
}

// One call's checks; `kernel` names it in every message.
class Checks {
 public:
  Checks(const char* kernel, const Kernels& kernels) : kernel_(kernel), kernels_(kernels) {}

  // Defined and on this backend's device.
  void on_device(const char* name, const Tensor& t) const {
    if (!t.defined()) throw Error("{}: {} is an undefined tensor", kernel_, name);
    if (t.device() != kernels_.device()) {
      throw Error("{}: {} is on {}, expected {}", kernel_, name, device_name(t.device()),
                  device_name(kernels_.device()));
    }
  }
  void type(const char* name, const Tensor& t, ElementType expected) const {
    on_device(name, t);
    if (t.type() != expected) {
      throw Error("{}: {} holds {}, expected {}", kernel_, name, to_string(t.type()), to_string(expected));
    }
  }
  void f32(const char* name, const Tensor& t) const { type(name, t, ElementType::f32); }
  void i32(const char* name, const Tensor& t) const { type(name, t, ElementType::i32); }
  // The compute type of the call: `t`'s, which must be one this backend computes in.
  ElementType compute_type(const char* name, const Tensor& t) const {
    on_device(name, t);
    if (!kernels_.computes_in(t.type())) {
      throw Error("{}: {} holds {}, which {} does not compute in", kernel_, name, to_string(t.type()),
                  device_name(kernels_.device()));
    }
    return t.type();
  }
  void numel(const char* name, const Tensor& t, int64_t expected) const {
    if (t.numel() != expected) {
      throw Error("{}: {} has shape {} ({} elements), expected {} elements", kernel_, name, t.shape_string(),
                  t.numel(), expected);
    }
  }
  void cols(const char* name, const Tensor& t, int64_t expected) const {
    if (fold(t).cols != expected) {
      throw Error("{}: {} has shape {}, expected a last axis of {}", kernel_, name, t.shape_string(), expected);
    }
  }
  AttentionShape attention(const Tensor& qkv, int64_t heads) const {
    compute_type("qkv", qkv);
    if (qkv.rank() != 3 || heads < 1 || qkv.dim(2) % (3 * heads) != 0) {
      throw Error("{}: qkv {} is not [batch, seq, 3·heads·head_dim] for {} heads", kernel_, qkv.shape_string(),
                  heads);
    }
    return AttentionShape{qkv.dim(0), qkv.dim(1), heads, qkv.dim(2) / (3 * heads)};
  }
  GroupedShape grouped(const char* name, const Tensor& qkv, int64_t heads, int64_t kv_heads) const {
    compute_type(name, qkv);
    if (heads < 1 || kv_heads < 1 || heads % kv_heads != 0) {
      throw Error("{}: {} query heads cannot share {} key/value groups evenly", kernel_, heads, kv_heads);
    }
    if (qkv.rank() != 3 || qkv.dim(2) % (heads + 2 * kv_heads) != 0) {
      throw Error("{}: {} {} is not [batch, seq, (heads + 2·kv_heads)·head_dim] for {} heads and {} groups",
                  kernel_, name, qkv.shape_string(), heads, kv_heads);
    }
    return GroupedShape{qkv.dim(0), qkv.dim(1), heads, kv_heads, qkv.dim(2) / (heads + 2 * kv_heads)};
  }
  // A grouped qkv whose heads rotary positions can turn: pairs of channels, a base above 1.
  GroupedShape rotary(const char* name, const Tensor& qkv, int64_t heads, int64_t kv_heads, float base) const {
    const GroupedShape shape = grouped(name, qkv, heads, kv_heads);
    if (shape.head_dim % 2 != 0 || !(base > 1.0f)) {
      throw Error("{}: head_dim {} must be even and base {} above 1", kernel_, shape.head_dim, base);
    }
    return shape;
  }

 private:
  const char* kernel_;
  const Kernels& kernels_;
};

}  // namespace

void Kernels::matmul(const Tensor& a, bool transpose_a, const Tensor& b, bool transpose_b, Tensor& c, float alpha,
                     float beta) {
  const Checks check("matmul", *this);
  const ElementType t = check.compute_type("a", a);
  check.type("b", b, t);
  check.on_device("c", c);
  if (c.type() != t && c.type() != ElementType::f32) {
    throw Error("matmul: c holds {}, expected {} or f32", to_string(c.type()), to_string(t));
  }
  const Folded fa = fold(a), fb = fold(b), fc = fold(c);
  const int64_t m = transpose_a ? fa.cols : fa.rows;
  const int64_t k = transpose_a ? fa.rows : fa.cols;
  const int64_t n = transpose_b ? fb.rows : fb.cols;
  const int64_t k_b = transpose_b ? fb.cols : fb.rows;
  if (k != k_b || fc.rows != m || fc.cols != n) {
    throw Error("matmul: op(a) [{}, {}] · op(b) [{}, {}] does not fit c {}", m, k, k_b, n, c.shape_string());
  }
  if (overlaps(c, a) || overlaps(c, b)) throw Error("matmul: c overlaps an operand");
  run_matmul(a, transpose_a, b, transpose_b, c, m, n, k, alpha, beta);
}

void Kernels::add_bias(Tensor& x, const Tensor& bias) {
  const Checks check("add_bias", *this);
  check.type("bias", bias, check.compute_type("x", x));
  const Folded fx = fold(x);
  check.numel("bias", bias, fx.cols);
  run_add_bias(x, bias, fx.rows, fx.cols);
}

void Kernels::bias_backward(const Tensor& dy, Tensor& dbias) {
  const Checks check("bias_backward", *this);
  check.compute_type("dy", dy);
  check.f32("dbias", dbias);
  const Folded fd = fold(dy);
  check.numel("dbias", dbias, fd.cols);
  run_bias_backward(dy, dbias, fd.rows, fd.cols);
}

void Kernels::add(const Tensor& a, const Tensor& b, Tensor& out) {
  const Checks check("add", *this);
  const ElementType t = check.compute_type("a", a);
  check.type("b", b, t);
  check.type("out", out, t);
  check.numel("b", b, a.numel());
  check.numel("out", out, a.numel());
  run_add(a, b, out);
}

void Kernels::layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y,
                                Tensor& mean, Tensor& rstd) {
  const Checks check("layernorm_forward", *this);
  const ElementType t = check.compute_type("x", x);
  check.type("gamma", gamma, t);
  check.type("beta", beta, t);
  check.type("y", y, t);
  check.f32("mean", mean);
  check.f32("rstd", rstd);
  const Folded fx = fold(x);
  check.numel("gamma", gamma, fx.cols);
  check.numel("beta", beta, fx.cols);
  check.numel("y", y, x.numel());
  check.numel("mean", mean, fx.rows);
  check.numel("rstd", rstd, fx.rows);
  run_layernorm_forward(x, gamma, beta, eps, y, mean, rstd, fx.rows, fx.cols);
}

void Kernels::layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                 const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  const Checks check("layernorm_backward", *this);
  const ElementType t = check.compute_type("x", x);
  check.type("dy", dy, t);
  check.type("gamma", gamma, t);
  check.type("dx", dx, t);
  for (const Tensor* s : std::initializer_list<const Tensor*>{&mean, &rstd, &dgamma, &dbeta}) check.f32("a statistic or norm gradient", *s);
  const Folded fx = fold(x);
  check.numel("dy", dy, x.numel());
  check.numel("dx", dx, x.numel());
  for (const Tensor* p : std::initializer_list<const Tensor*>{&gamma, &dgamma, &dbeta}) check.numel("a norm parameter", *p, fx.cols);
  check.numel("mean", mean, fx.rows);
  check.numel("rstd", rstd, fx.rows);
  run_layernorm_backward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta, fx.rows, fx.cols);
}

void Kernels::gelu_forward(const Tensor& x, Tensor& y) {
  const Checks check("gelu_forward", *this);
  check.type("y", y, check.compute_type("x", x));
  check.numel("y", y, x.numel());
  run_gelu_forward(x, y);
}

void Kernels::gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) {
  const Checks check("gelu_backward", *this);
  const ElementType t = check.compute_type("x", x);
  check.type("dy", dy, t);
  check.type("dx", dx, t);
  check.numel("dy", dy, x.numel());
  check.numel("dx", dx, x.numel());
  run_gelu_backward(dy, x, dx);
}

void Kernels::rmsnorm_forward(const Tensor& x, const Tensor& gamma, float eps, Tensor& y, Tensor& rstd) {
  const Checks check("rmsnorm_forward", *this);
  const ElementType t = check.compute_type("x", x);
  check.type("gamma", gamma, t);
  check.type("y", y, t);
  check.f32("rstd", rstd);
  const Folded fx = fold(x);
  check.numel("gamma", gamma, fx.cols);
  check.numel("y", y, x.numel());
  check.numel("rstd", rstd, fx.rows);
  run_rmsnorm_forward(x, gamma, eps, y, rstd, fx.rows, fx.cols);
}

void Kernels::rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& rstd, Tensor& dx,
                               Tensor& dgamma) {
  const Checks check("rmsnorm_backward", *this);
  const ElementType t = check.compute_type("x", x);
  check.type("dy", dy, t);
  check.type("gamma", gamma, t);
  check.type("dx", dx, t);
  check.f32("rstd", rstd);
  check.f32("dgamma", dgamma);
  const Folded fx = fold(x);
  check.numel("dy", dy, x.numel());
  check.numel("dx", dx, x.numel());
  check.numel("gamma", gamma, fx.cols);
  check.numel("dgamma", dgamma, fx.cols);
  check.numel("rstd", rstd, fx.rows);
  run_rmsnorm_backward(dy, x, gamma, rstd, dx, dgamma, fx.rows, fx.cols);
}

void Kernels::swiglu_forward(const Tensor& gate_up, Tensor& y) {
  const Checks check("swiglu_forward", *this);
  check.type("y", y, check.compute_type("gate_up", gate_up));
  const Folded fg = fold(gate_up);
  if (fg.cols % 2 != 0) throw Error("swiglu_forward: gate_up {} has an odd last axis, expected [gate | up]", gate_up.shape_string());
  check.cols("y", y, fg.cols / 2);
  check.numel("y", y, gate_up.numel() / 2);
  if (overlaps(y, gate_up)) throw Error("swiglu_forward: y overlaps gate_up");
  run_swiglu_forward(gate_up, y, fg.rows, fg.cols / 2);
}

void Kernels::swiglu_backward(const Tensor& dy, const Tensor& gate_up, Tensor& dgate_up) {
  const Checks check("swiglu_backward", *this);
  const ElementType t = check.compute_type("gate_up", gate_up);
  check.type("dy", dy, t);
  check.type("dgate_up", dgate_up, t);
  const Folded fg = fold(gate_up);
  if (fg.cols % 2 != 0) throw Error("swiglu_backward: gate_up {} has an odd last axis, expected [gate | up]", gate_up.shape_string());
  check.cols("dy", dy, fg.cols / 2);
  check.numel("dy", dy, gate_up.numel() / 2);
  check.numel("dgate_up", dgate_up, gate_up.numel());
  if (overlaps(dgate_up, gate_up) || overlaps(dgate_up, dy)) throw Error("swiglu_backward: dgate_up overlaps an input");
  run_swiglu_backward(dy, gate_up, dgate_up, fg.rows, fg.cols / 2);
}

void Kernels::rotary_forward(Tensor& qkv, int64_t heads, int64_t kv_heads, float base) {
  const Checks check("rotary_forward", *this);
  run_rotary(qkv, check.rotary("qkv", qkv, heads, kv_heads, base), base, /*inverse=*/false);
}

void Kernels::rotary_backward(Tensor& dqkv, int64_t heads, int64_t kv_heads, float base) {
  const Checks check("rotary_backward", *this);
  run_rotary(dqkv, check.rotary("dqkv", dqkv, heads, kv_heads, base), base, /*inverse=*/true);
}

void Kernels::expand_query_groups(const Tensor& grouped, int64_t heads, int64_t kv_heads, Tensor& full) {
  const Checks check("expand_query_groups", *this);
  const GroupedShape shape = check.grouped("grouped", grouped, heads, kv_heads);
  check.type("full", full, grouped.type());
  check.numel("full", full, shape.batch * shape.seq * 3 * heads * shape.head_dim);
  if (overlaps(full, grouped)) throw Error("expand_query_groups: full overlaps grouped");
  run_expand_query_groups(grouped, full, shape);
}

void Kernels::reduce_query_groups(const Tensor& full, int64_t heads, int64_t kv_heads, Tensor& grouped) {
  const Checks check("reduce_query_groups", *this);
  const GroupedShape shape = check.grouped("grouped", grouped, heads, kv_heads);
  check.type("full", full, grouped.type());
  check.numel("full", full, shape.batch * shape.seq * 3 * heads * shape.head_dim);
  if (overlaps(full, grouped)) throw Error("reduce_query_groups: grouped overlaps full");
  run_reduce_query_groups(full, grouped, shape);
}

void Kernels::attention_forward(const Tensor& qkv, int64_t heads, Tensor& out, Tensor& probabilities) {
  const Checks check("attention_forward", *this);
  const AttentionShape shape = check.attention(qkv, heads);
  check.type("out", out, qkv.type());
  check.type("probabilities", probabilities, qkv.type());
  check.numel("out", out, qkv.numel() / 3);
  check.numel("probabilities", probabilities, shape.batch * shape.heads * shape.seq * shape.seq);
  run_attention_forward(qkv, out, probabilities, shape);
}

void Kernels::attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& probabilities, int64_t heads,
                                 Tensor& dqkv) {
  const Checks check("attention_backward", *this);
  const AttentionShape shape = check.attention(qkv, heads);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dout, &probabilities, &dqkv}) check.type("an activation or its gradient", *t, qkv.type());
  check.numel("dout", dout, qkv.numel() / 3);
  check.numel("probabilities", probabilities, shape.batch * shape.heads * shape.seq * shape.seq);
  check.numel("dqkv", dqkv, qkv.numel());
  run_attention_backward(dout, qkv, probabilities, dqkv, shape);
}

void Kernels::flash_attention_forward(const Tensor& qkv, int64_t heads, Tensor& out, Tensor& log_sum_exp) {
  const Checks check("flash_attention_forward", *this);
  const AttentionShape shape = check.attention(qkv, heads);
  check.type("out", out, qkv.type());
  check.f32("log_sum_exp", log_sum_exp);
  check.numel("out", out, qkv.numel() / 3);
  check.numel("log_sum_exp", log_sum_exp, shape.batch * shape.heads * shape.seq);
  run_flash_attention_forward(qkv, out, log_sum_exp, shape);
}

void Kernels::flash_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out,
                                       const Tensor& log_sum_exp, int64_t heads, Tensor& dqkv) {
  const Checks check("flash_attention_backward", *this);
  const AttentionShape shape = check.attention(qkv, heads);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dout, &out, &dqkv}) check.type("an activation or its gradient", *t, qkv.type());
  check.f32("log_sum_exp", log_sum_exp);
  check.numel("dout", dout, qkv.numel() / 3);
  check.numel("out", out, qkv.numel() / 3);
  check.numel("log_sum_exp", log_sum_exp, shape.batch * shape.heads * shape.seq);
  check.numel("dqkv", dqkv, qkv.numel());
  run_flash_attention_backward(dout, qkv, out, log_sum_exp, dqkv, shape);
}

void Kernels::embedding_forward(const Tensor& tokens, const Tensor& table, int64_t vocab_start, Tensor& out) {
  const Checks check("embedding_forward", *this);
  check.i32("tokens", tokens);
  check.type("out", out, check.compute_type("table", table));
  const Folded ft = fold(table);
  check.numel("out", out, tokens.numel() * ft.cols);
  check.cols("out", out, ft.cols);
  run_embedding_forward(tokens, table, vocab_start, out, tokens.numel(), ft.rows, ft.cols);
}

void Kernels::embedding_backward(const Tensor& dout, const Tensor& tokens, int64_t vocab_start, Tensor& dtable) {
  const Checks check("embedding_backward", *this);
  check.compute_type("dout", dout);
  check.i32("tokens", tokens);
  check.f32("dtable", dtable);
  const Folded ft = fold(dtable);
  check.numel("dout", dout, tokens.numel() * ft.cols);
  check.cols("dout", dout, ft.cols);
  run_embedding_backward(dout, tokens, vocab_start, dtable, tokens.numel(), ft.rows, ft.cols);
}

void Kernels::cross_entropy_partials(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                     Tensor& row_max, Tensor& sum_exp, Tensor& target_logit) {
  const Checks check("cross_entropy_partials", *this);
  check.compute_type("logits", logits);
  check.i32("targets", targets);
  const Folded fl = fold(logits);
  check.numel("targets", targets, fl.rows);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&row_max, &sum_exp, &target_logit}) {
    check.f32("a per-row result", *t);
    check.numel("a per-row result", *t, fl.rows);
  }
  run_cross_entropy_partials(logits, targets, vocab_start, row_max, sum_exp, target_logit, fl.rows, fl.cols);
}

void Kernels::cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                     const Tensor& global_max, const Tensor& global_sum_exp, float scale,
                                     Tensor& dlogits) {
  const Checks check("cross_entropy_backward", *this);
  check.type("dlogits", dlogits, check.compute_type("logits", logits));
  check.i32("targets", targets);
  const Folded fl = fold(logits);
  check.numel("targets", targets, fl.rows);
  check.numel("dlogits", dlogits, logits.numel());
  for (const Tensor* t : std::initializer_list<const Tensor*>{&global_max, &global_sum_exp}) {
    check.f32("a global statistic", *t);
    check.numel("a global statistic", *t, fl.rows);
  }
  run_cross_entropy_backward(logits, targets, vocab_start, global_max, global_sum_exp, scale, dlogits, fl.rows,
                             fl.cols);
}

void Kernels::adamw(Tensor& master, const Tensor& gradient, Tensor& m, Tensor& v, const AdamWSettings& settings,
                    Tensor* working_copy) {
  const Checks check("adamw", *this);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&master, &gradient, &m, &v}) {
    check.f32("a master weight, gradient or moment", *t);
    check.numel("a gradient or moment", *t, master.numel());
  }
  if (working_copy != nullptr) {
    check.type("working_copy", *working_copy, ElementType::bf16);
    check.numel("working_copy", *working_copy, master.numel());
  }
  if (settings.step < 1) throw Error("adamw: step {} does not count from 1", settings.step);
  run_adamw(master, gradient, m, v, settings, working_copy);
}

double Kernels::sum_of_squares(const Tensor& x, const Tensor* weights) {
  const Checks check("sum_of_squares", *this);
  check.compute_type("x", x);
  if (weights != nullptr) {
    check.f32("weights", *weights);
    check.numel("weights", *weights, x.numel());
  }
  return run_sum_of_squares(x, weights);
}

void Kernels::scale(Tensor& x, float factor) {
  Checks("scale", *this).compute_type("x", x);
  run_scale(x, factor);
}

void Kernels::copy(const Tensor& from, Tensor& to) {
  if (!from.defined() || !to.defined()) throw Error("copy: an undefined tensor");
  for (const Tensor* t : std::initializer_list<const Tensor*>{&from, &to}) {
    if (t->device() != device() && t->device() != Device::cpu) {
      throw Error("copy: a tensor is on {}, which {} cannot reach", device_name(t->device()),
                  device_name(device()));
    }
  }
  if (to.type() != from.type()) {
    throw Error("copy: to holds {}, expected {} (cast converts)", to_string(to.type()), to_string(from.type()));
  }
  Checks("copy", *this).numel("to", to, from.numel());
  run_copy(from, to);
}

void Kernels::cast(const Tensor& from, Tensor& to) {
  const Checks check("cast", *this);
  check.on_device("from", from);
  check.on_device("to", to);
  check.numel("to", to, from.numel());
  for (const Tensor* t : std::initializer_list<const Tensor*>{&from, &to}) {
    if (t->type() != ElementType::f32 && t->type() != ElementType::bf16) {
      throw Error("cast: a tensor holds {}, expected f32 or bf16", to_string(t->type()));
    }
  }
  if (from.type() == to.type()) {
    run_copy(from, to);
    return;
  }
  if (overlaps(from, to)) throw Error("cast: from and to overlap");
  run_cast(from, to);
}

}  // namespace loom::exec
