// The memory-bound kernels, each called as the model code calls it and recorded at the bytes
// core/kernel_bytes.hpp charges for the size it ran, with element_bytes of profiled_type (4 on
// the CPU, which computes in fp32; 2 for CUDA's bf16), so the simulator's lookups compare like
// with like. Activations are of that type, parameter gradients, norm statistics and the
// optimizer's state fp32, as in the model. GPT-2's kernels and Llama's (RMSNorm, SwiGLU, rotary
// positions, the expansion of query groups) are measured over the same activations. Softmax and
// dropout have no rows: the executor runs softmax inside its attention kernels and has no dropout.

#include "core/kernel_bytes.hpp"
#include "core/model_spec.hpp"  // kDefaultRotaryBase
#include "executor/profile/measure.hpp"
#include "executor/profile/random_tensors.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <string>

namespace loom::exec::profile {
namespace {

namespace bytes = core::kernel_bytes;

// Times one kernel call at one size, records it and prints its line of the table. The size is
// printed as the arguments of its kernel_bytes formula ("rows=64 width=256"), which is how the
// tests check that every row's bytes come from that formula.
class KernelTable {
 public:
  KernelTable(Kernels& kernels, const TimingPolicy& policy, Measured& measured)
      : kernels_(kernels), timer_(kernels, policy), measured_(measured), type_(profiled_type(kernels)) {
    constexpr std::string_view header = "#{:>21}  {:<44} {:>12} {:>12} {:>10}\n";
    fmt::print("# memory-bound kernels ({})\n", core::to_string(dtype_of(type_)));
    fmt::print(header, "kernel", "size", "bytes", "time", "rate");
    fmt::print(header, "", "", "(B)", "(us)", "(GB/s)");
  }

  Kernels& kernels() { return kernels_; }
  ElementType type() const { return type_; }
  double element_bytes() const { return double(element_size(type_)); }
  // A tensor of the compute type, or of fp32, on the kernels' device (contents undefined).
  Tensor activation(std::vector<int64_t> shape) const { return Tensor(std::move(shape), type_, kernels_.device()); }
  Tensor f32(std::vector<int64_t> shape) const { return Tensor(std::move(shape), ElementType::f32, kernels_.device()); }

  void measure(std::string_view kernel, const std::string& size, double charged_bytes,
               const std::function<void()>& call) {
    const Timing t = timer_(call);
    const int64_t recorded = int64_t(charged_bytes);
    measured_.add(core::KernelSample{.kernel = std::string(kernel), .bytes = recorded, .time_s = t.median_s},
                  t.spread);
    fmt::print("{:>22}  {:<44} {:>12} {:>12.1f} {:>10.2f}\n", kernel, size, recorded, t.median_s * 1e6,
               double(recorded) / t.median_s / 1e9);
  }

 private:
  Kernels& kernels_;
  KernelTimer timer_;
  Measured& measured_;
  ElementType type_;
};

// Keeps a result the compiler would otherwise be free to drop with the loop computing it.
volatile double g_sink = 0;

// The values of an fp32 tensor on the host (GptStage::host_floats).
std::vector<float> host_floats(Kernels& k, const Tensor& x) {
  Tensor host({x.numel()}, ElementType::f32, Device::cpu);
  k.copy(x, host);
  return std::vector<float>(host.data<float>(), host.data<float>() + host.numel());
}

// Layer norm, GELU, residual adds and biases over an activation [rows, width] (layer_forward,
// layer_backward).
void layer_kernels(KernelTable& table, RandomTensors& random, int64_t rows, int64_t width) {
  Kernels& k = table.kernels();
  const ElementType t = table.type();
  const double n = double(rows) * double(width), e = table.element_bytes();
  const std::string matrix = fmt::format("rows={} width={}", rows, width);
  const std::string elements = fmt::format("elements={}", rows * width);
  const Tensor x = random.uniform({rows, width}, t), dy = random.uniform({rows, width}, t);
  const Tensor gamma = random.uniform({width}, t), beta = random.uniform({width}, t);
  Tensor y = table.activation({rows, width}), dx = table.activation({rows, width});
  Tensor mean = table.f32({rows}), rstd = table.f32({rows});
  Tensor dgamma = random.uniform({width}), dbeta = random.uniform({width});

  table.measure(bytes::kLayernorm, matrix, bytes::layernorm_forward(double(rows), double(width), e),
                [&] { k.layernorm_forward(x, gamma, beta, 1e-5f, y, mean, rstd); });
  table.measure(bytes::kLayernormBackward, matrix, bytes::layernorm_backward(double(rows), double(width), e),
                [&] { k.layernorm_backward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta); });
  // GELU maps each input to one output.
  const std::string gelu = fmt::format("inputs={} outputs={}", rows * width, rows * width);
  table.measure(bytes::kGelu, gelu, bytes::gelu_forward(n, n, e), [&] { k.gelu_forward(x, y); });
  table.measure(bytes::kGeluBackward, gelu, bytes::gelu_backward(n, n, e), [&] { k.gelu_backward(dy, x, dx); });
  // Forward: out = x + block(x) into a new tensor; backward: the block's input gradient
  // accumulates the residual's in place (k.add(dafter, grad, dafter)).
  table.measure(bytes::kResidual, elements, bytes::residual(n, e), [&] { k.add(x, dy, y); });
  table.measure(bytes::kResidualBackward, elements, bytes::residual_backward(n, e), [&] { k.add(dx, dy, dx); });
  table.measure(bytes::kBias, matrix, bytes::bias(double(rows), double(width), e), [&] { k.add_bias(y, beta); });
  table.measure(bytes::kBiasBackward, matrix, bytes::bias_backward(double(rows), double(width), e),
                [&] { k.bias_backward(dy, dbeta); });
}

// The Llama layer's own kernels over an activation of rows × width (layer_forward and
// layer_backward with RMSNorm, SwiGLU, rotary positions and grouped-query attention): RMSNorm
// of it; SwiGLU with it as the fused [gate | up] projection (ffn = width/2); rotary positions
// and the query groups' expansion with it as a grouped qkv of 4 heads in 2 groups (head_dim =
// width/8, as loom-tiny-llama's 4 heads of 32 in 2 groups at width 256), in sequences of
// grid.embedding_positions tokens (or one sequence of all rows, when they are fewer).
void llama_layer_kernels(KernelTable& table, RandomTensors& random, const ProfileGrid& grid, int64_t rows,
                         int64_t width) {
  Kernels& k = table.kernels();
  const ElementType t = table.type();
  const double e = table.element_bytes();
  const std::string matrix = fmt::format("rows={} width={}", rows, width);
  const Tensor x = random.uniform({rows, width}, t), dy = random.uniform({rows, width}, t);
  const Tensor gamma = random.uniform({width}, t);
  Tensor y = table.activation({rows, width}), dx = table.activation({rows, width});
  Tensor rstd = table.f32({rows}), dgamma = random.uniform({width});
  table.measure(bytes::kRmsnorm, matrix, bytes::rmsnorm_forward(double(rows), double(width), e),
                [&] { k.rmsnorm_forward(x, gamma, 1e-5f, y, rstd); });
  table.measure(bytes::kRmsnormBackward, matrix, bytes::rmsnorm_backward(double(rows), double(width), e),
                [&] { k.rmsnorm_backward(dy, x, gamma, rstd, dx, dgamma); });

  const int64_t ffn = width / 2;
  const std::string swiglu = fmt::format("rows={} ffn={}", rows, ffn);
  const Tensor dy_ffn = random.uniform({rows, ffn}, t);
  Tensor y_ffn = table.activation({rows, ffn});
  table.measure(bytes::kSwiglu, swiglu, bytes::swiglu_forward(double(rows), double(ffn), e),
                [&] { k.swiglu_forward(x, y_ffn); });
  table.measure(bytes::kSwigluBackward, swiglu, bytes::swiglu_backward(double(rows), double(ffn), e),
                [&] { k.swiglu_backward(dy_ffn, x, dx); });

  constexpr int64_t heads = 4, kv_heads = 2;
  const int64_t head_dim = width / (heads + 2 * kv_heads);
  const int64_t seq = rows % grid.embedding_positions == 0 ? grid.embedding_positions : rows;
  const std::string grouped =
      fmt::format("rows={} heads={} kv_heads={} head_dim={}", rows, heads, kv_heads, head_dim);
  const double h = double(heads), g = double(kv_heads), d = double(head_dim);
  const float base = float(core::kDefaultRotaryBase);
  Tensor qkv = random.uniform({rows / seq, seq, width}, t);
  // Turned back and forth in place: the values stay those of a rotation of the random ones.
  table.measure(bytes::kRotary, grouped, bytes::rotary_forward(double(rows), h, g, d, e),
                [&] { k.rotary_forward(qkv, heads, kv_heads, base); });
  table.measure(bytes::kRotaryBackward, grouped, bytes::rotary_backward(double(rows), h, g, d, e),
                [&] { k.rotary_backward(qkv, heads, kv_heads, base); });
  Tensor full = table.activation({rows / seq, seq, 3 * heads * head_dim});
  table.measure(bytes::kQueryGroups, grouped, bytes::query_groups_forward(double(rows), h, g, d, e),
                [&] { k.expand_query_groups(qkv, heads, kv_heads, full); });
  table.measure(bytes::kQueryGroupsBackward, grouped, bytes::query_groups_backward(double(rows), h, g, d, e),
                [&] { k.reduce_query_groups(full, heads, kv_heads, qkv); });
}

// GptStage::embed and embed_backward with tp = 1 (their tensor-parallel steps are identities):
// token rows from wte, position rows from wpe, summed in place; backward scatters the gradient
// rows into both (fp32) tables. The position ids are built once here, per microbatch there.
void embedding_kernels(KernelTable& table, RandomTensors& random, const ProfileGrid& grid, int64_t tokens) {
  Kernels& k = table.kernels();
  const ElementType t = table.type();
  const int64_t h = grid.activation_width;
  const std::string size = fmt::format("tokens={} hidden={}", tokens, h);
  const Tensor ids = random.tokens(tokens, grid.embedding_vocab);
  Tensor host_positions({tokens}, ElementType::i32, Device::cpu);
  for (int64_t i = 0; i < tokens; ++i) host_positions.data<int32_t>()[i] = int32_t(i % grid.embedding_positions);
  const Tensor positions = on_device(k, host_positions);
  const Tensor wte = random.uniform({grid.embedding_vocab, h}, t),
               wpe = random.uniform({grid.embedding_positions, h}, t);
  Tensor wte_grad = random.uniform({grid.embedding_vocab, h}),
         wpe_grad = random.uniform({grid.embedding_positions, h});
  Tensor x = table.activation({tokens, h}), position_rows = table.activation({tokens, h});
  const Tensor grad = random.uniform({tokens, h}, t);

  table.measure(bytes::kEmbedding, size, bytes::embedding_forward(double(tokens), double(h), table.element_bytes()),
                [&] {
                  k.embedding_forward(ids, wte, 0, x);
                  k.embedding_forward(positions, wpe, 0, position_rows);
                  k.add(x, position_rows, x);
                });
  table.measure(bytes::kEmbeddingBackward, size,
                bytes::embedding_backward(double(tokens), double(h), table.element_bytes()), [&] {
                  k.embedding_backward(grad, positions, 0, wpe_grad);
                  k.embedding_backward(grad, ids, 0, wte_grad);
                });
}

// GptStage::output_forward's loss after the logits GEMM and output_backward's gradient, with
// tp = 1: the max, Σ exp and target-logit all-reduces are identities; the [rows] partials come
// to the host for the loss, as there.
void cross_entropy_kernels(KernelTable& table, RandomTensors& random, int64_t rows, int64_t vocab) {
  Kernels& k = table.kernels();
  const std::string size = fmt::format("tokens={} vocab={}", rows, vocab);
  const Tensor logits = random.uniform({rows, vocab}, table.type()), targets = random.tokens(rows, vocab);
  Tensor row_max = table.f32({rows}), sum_exp = table.f32({rows}), target_logit = table.f32({rows});
  Tensor dlogits = table.activation({rows, vocab});

  table.measure(bytes::kCrossEntropy, size,
                bytes::cross_entropy_forward(double(rows), double(vocab), table.element_bytes()), [&] {
                  k.cross_entropy_partials(logits, targets, 0, row_max, sum_exp, target_logit);
                  // Kept there for the rescale to the global max (tp > 1), copied at every tp.
                  const Tensor local_max = row_max.clone();
                  const std::vector<float> global = host_floats(k, row_max), sum = host_floats(k, sum_exp),
                                           target = host_floats(k, target_logit);
                  double loss = 0;
                  for (int64_t r = 0; r < rows; ++r)
                    loss += std::log(double(sum[r])) + double(global[r]) - double(target[r]);
                  g_sink = loss / double(rows);
                });
  table.measure(bytes::kCrossEntropyBackward, size,
                bytes::cross_entropy_backward(double(rows), double(vocab), table.element_bytes()), [&] {
                  k.cross_entropy_backward(logits, targets, 0, row_max, sum_exp, 1.0f / float(rows), dlogits);
                });
}

// Optimizer over `parameters` values: its gradient norm (Optimizer::local_sum_of_squares, each
// value weighted once), and AdamW as it calls it for one parameter of that size, with the
// compute-type working copy when that is not fp32. The moments start at zero, as there.
void optimizer_kernels(KernelTable& table, RandomTensors& random, int64_t parameters) {
  Kernels& k = table.kernels();
  const std::string size = fmt::format("parameters={}", parameters);
  Tensor values = random.uniform({parameters});
  Tensor m = Tensor::zeros({parameters}, ElementType::f32, k.device()),
         v = Tensor::zeros({parameters}, ElementType::f32, k.device());
  const Tensor grads = random.uniform({parameters});
  Tensor host_weights({parameters}, ElementType::f32, Device::cpu);
  for (int64_t i = 0; i < parameters; ++i) host_weights.data<float>()[i] = 1.0f;
  const Tensor weights = on_device(k, host_weights);
  Tensor working = table.type() == ElementType::f32 ? Tensor() : table.activation({parameters});
  const AdamWSettings settings{
      .lr = 6e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .step = 1};

  table.measure(bytes::kAdamw, size, bytes::adamw(double(parameters)),
                [&] { k.adamw(values, grads, m, v, settings, working.defined() ? &working : nullptr); });
  table.measure(bytes::kGradNorm, size, bytes::grad_norm(double(parameters)),
                [&] { g_sink = k.sum_of_squares(grads, &weights); });
}

}  // namespace

void measure_memory_kernels(Kernels& kernels, const ProfileGrid& grid, Measured& measured) {
  RandomTensors random(kernels);
  KernelTable table(kernels, grid.timing, measured);
  for (int64_t activation : grid.activation_bytes) {
    const int64_t elements = activation / int64_t(table.element_bytes()), rows = elements / grid.activation_width;
    layer_kernels(table, random, rows, grid.activation_width);
    llama_layer_kernels(table, random, grid, rows, grid.activation_width);
    embedding_kernels(table, random, grid, rows);
    optimizer_kernels(table, random, elements);
  }
  for (int64_t vocab : grid.vocab_shards) cross_entropy_kernels(table, random, grid.cross_entropy_tokens, vocab);
  std::fflush(stdout);
}

}  // namespace loom::exec::profile
