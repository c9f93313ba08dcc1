// The CPU Kernels: the float instantiation of the templates in cpu_math.hpp, behind the checking
// front of kernels.hpp (kernel_front.cpp).

#include "core/error.hpp"
#include "executor/bfloat16.hpp"
#include "executor/kernels/cpu/cpu_math.hpp"
#include "executor/kernels/cpu/eigen_maps.hpp"  // Eigen::setNbThreads
#include "executor/kernels/kernels.hpp"

#include <cstring>

namespace loom::exec {
namespace {

cpu::AttentionShape cpu_shape(const AttentionShape& shape) {
  return cpu::AttentionShape{shape.batch, shape.seq, shape.heads, shape.head_dim};
}

cpu::GroupedShape cpu_shape(const GroupedShape& shape) {
  return cpu::GroupedShape{shape.batch, shape.seq, shape.heads, shape.kv_heads, shape.head_dim};
}

// Computes in f32 only: a bf16 plan runs here in fp32 (run_command says so).
class CpuKernels final : public Kernels {
 public:
  Device device() const override { return Device::cpu; }
  bool computes_in(ElementType type) const override { return type == ElementType::f32; }
  void synchronize() override {}

 protected:
  void run_matmul(const Tensor& a, bool transpose_a, const Tensor& b, bool transpose_b, Tensor& c, int64_t m,
                  int64_t n, int64_t k, float alpha, float beta) override {
    cpu::matmul(a.data<float>(), transpose_a, b.data<float>(), transpose_b, c.data<float>(), m, n, k, alpha, beta);
  }
  void run_add_bias(Tensor& x, const Tensor& bias, int64_t rows, int64_t cols) override {
    cpu::add_bias(x.data<float>(), bias.data<float>(), rows, cols);
  }
  void run_bias_backward(const Tensor& dy, Tensor& dbias, int64_t rows, int64_t cols) override {
    cpu::bias_backward(dy.data<float>(), dbias.data<float>(), rows, cols);
  }
  void run_add(const Tensor& a, const Tensor& b, Tensor& out) override {
    cpu::add(a.data<float>(), b.data<float>(), out.data<float>(), a.numel());
  }
  void run_layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y,
                             Tensor& mean, Tensor& rstd, int64_t rows, int64_t cols) override {
    cpu::layernorm_forward(x.data<float>(), gamma.data<float>(), beta.data<float>(), eps, y.data<float>(),
                           mean.data<float>(), rstd.data<float>(), rows, cols);
  }
  void run_layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                              const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, int64_t rows,
                              int64_t cols) override {
    cpu::layernorm_backward(dy.data<float>(), x.data<float>(), gamma.data<float>(), mean.data<float>(),
                            rstd.data<float>(), dx.data<float>(), dgamma.data<float>(), dbeta.data<float>(), rows,
                            cols);
  }
  void run_gelu_forward(const Tensor& x, Tensor& y) override {
    cpu::gelu_forward(x.data<float>(), y.data<float>(), x.numel());
  }
  void run_gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) override {
    cpu::gelu_backward(dy.data<float>(), x.data<float>(), dx.data<float>(), x.numel());
  }
  void run_rmsnorm_forward(const Tensor& x, const Tensor& gamma, float eps, Tensor& y, Tensor& rstd, int64_t rows,
                           int64_t cols) override {
    cpu::rmsnorm_forward(x.data<float>(), gamma.data<float>(), eps, y.data<float>(), rstd.data<float>(), rows, cols);
  }
  void run_rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& rstd, Tensor& dx,
                            Tensor& dgamma, int64_t rows, int64_t cols) override {
    cpu::rmsnorm_backward(dy.data<float>(), x.data<float>(), gamma.data<float>(), rstd.data<float>(),
                          dx.data<float>(), dgamma.data<float>(), rows, cols);
  }
  void run_swiglu_forward(const Tensor& gate_up, Tensor& y, int64_t rows, int64_t f) override {
    cpu::swiglu_forward(gate_up.data<float>(), y.data<float>(), rows, f);
  }
  void run_swiglu_backward(const Tensor& dy, const Tensor& gate_up, Tensor& dgate_up, int64_t rows,
                           int64_t f) override {
    cpu::swiglu_backward(dy.data<float>(), gate_up.data<float>(), dgate_up.data<float>(), rows, f);
  }
  void run_rotary(Tensor& qkv, const GroupedShape& shape, float base, bool inverse) override {
    cpu::rotary(qkv.data<float>(), cpu_shape(shape), double(base), inverse);
  }
  void run_expand_query_groups(const Tensor& grouped, Tensor& full, const GroupedShape& shape) override {
    cpu::expand_query_groups(grouped.data<float>(), full.data<float>(), cpu_shape(shape));
  }
  void run_reduce_query_groups(const Tensor& full, Tensor& grouped, const GroupedShape& shape) override {
    cpu::reduce_query_groups(full.data<float>(), grouped.data<float>(), cpu_shape(shape));
  }
  void run_attention_forward(const Tensor& qkv, Tensor& out, Tensor& probabilities,
                             const AttentionShape& shape) override {
    cpu::attention_forward(qkv.data<float>(), out.data<float>(), probabilities.data<float>(), cpu_shape(shape));
  }
  void run_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& probabilities, Tensor& dqkv,
                              const AttentionShape& shape) override {
    cpu::attention_backward(dout.data<float>(), qkv.data<float>(), probabilities.data<float>(), dqkv.data<float>(),
                            cpu_shape(shape));
  }
  void run_flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& log_sum_exp,
                                   const AttentionShape& shape) override {
    cpu::flash_attention_forward(qkv.data<float>(), out.data<float>(), log_sum_exp.data<float>(), cpu_shape(shape));
  }
  void run_flash_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out,
                                    const Tensor& log_sum_exp, Tensor& dqkv, const AttentionShape& shape) override {
    cpu::flash_attention_backward(dout.data<float>(), qkv.data<float>(), out.data<float>(),
                                  log_sum_exp.data<float>(), dqkv.data<float>(), cpu_shape(shape));
  }
  void run_embedding_forward(const Tensor& tokens, const Tensor& table, int64_t vocab_start, Tensor& out,
                             int64_t count, int64_t shard_rows, int64_t cols) override {
    cpu::embedding_forward(tokens.data<int32_t>(), table.data<float>(), vocab_start, shard_rows, out.data<float>(),
                           count, cols);
  }
  void run_embedding_backward(const Tensor& dout, const Tensor& tokens, int64_t vocab_start, Tensor& dtable,
                              int64_t count, int64_t shard_rows, int64_t cols) override {
    cpu::embedding_backward(dout.data<float>(), tokens.data<int32_t>(), vocab_start, shard_rows,
                            dtable.data<float>(), count, cols);
  }
  void run_cross_entropy_partials(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                  Tensor& row_max, Tensor& sum_exp, Tensor& target_logit, int64_t rows,
                                  int64_t cols) override {
    cpu::cross_entropy_partials(logits.data<float>(), targets.data<int32_t>(), vocab_start, row_max.data<float>(),
                                sum_exp.data<float>(), target_logit.data<float>(), rows, cols);
  }
  void run_cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                  const Tensor& global_max, const Tensor& global_sum_exp, float scale,
                                  Tensor& dlogits, int64_t rows, int64_t cols) override {
    cpu::cross_entropy_backward(logits.data<float>(), targets.data<int32_t>(), vocab_start,
                                global_max.data<float>(), global_sum_exp.data<float>(), scale,
                                dlogits.data<float>(), rows, cols);
  }
  void run_adamw(Tensor& master, const Tensor& gradient, Tensor& m, Tensor& v, const AdamWSettings& settings,
                 Tensor* working_copy) override {
    cpu::adamw(master.data<float>(), gradient.data<float>(), m.data<float>(), v.data<float>(), master.numel(),
               cpu::AdamWSettings<float>{settings.lr, settings.beta1, settings.beta2, settings.eps,
                                         settings.weight_decay, settings.step});
    if (working_copy != nullptr) run_cast(master, *working_copy);
  }
  double run_sum_of_squares(const Tensor& x, const Tensor* weights) override {
    if (weights == nullptr) return cpu::sum_of_squares(x.data<float>(), x.numel());
    const float* values = x.data<float>();
    const float* w = weights->data<float>();
    double sum = 0;
    for (int64_t i = 0; i < x.numel(); ++i) sum += double(w[i]) * double(values[i]) * double(values[i]);
    return sum;
  }
  void run_scale(Tensor& x, float factor) override { cpu::scale(x.data<float>(), factor, x.numel()); }
  void run_copy(const Tensor& from, Tensor& to) override {
    std::memmove(to.data<char>(), from.data<char>(), from.bytes());
  }
  // Host conversions (checkpoints of bf16 runs, tests); the CPU never computes in bf16.
  void run_cast(const Tensor& from, Tensor& to) override {
    const int64_t n = from.numel();
    if (from.type() == ElementType::f32) {
      const float* in = from.data<float>();
      uint16_t* out = to.data<uint16_t>();
      for (int64_t i = 0; i < n; ++i) out[i] = float_to_bf16_bits(in[i]);
    } else {
      const uint16_t* in = from.data<uint16_t>();
      float* out = to.data<float>();
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_bits_to_float(in[i]);
    }
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
