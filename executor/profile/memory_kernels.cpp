// The memory-bound kernels, each called as the model code calls it and recorded at the bytes
// core/kernel_bytes.hpp charges for the size it ran (element_bytes 4: the CPU computes in fp32),
// so the simulator's lookups compare like with like. Softmax and dropout have no rows: the CPU
// executor runs softmax inside its attention kernel and has no dropout.

#include "core/kernel_bytes.hpp"
#include "executor/engine/optimizer.hpp"
#include "executor/profile/measure.hpp"
#include "executor/profile/random_tensors.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <string>

namespace loom::exec::profile {
namespace {

namespace bytes = core::kernel_bytes;
constexpr double kFp32 = 4;

// Times one kernel call at one size, records it and prints its line of the table. The size is
// printed as the arguments of its kernel_bytes formula ("rows=64 width=256"), which is how the
// tests check that every row's bytes come from that formula.
class KernelTable {
 public:
  KernelTable(const TimingPolicy& policy, Measured& measured)
      : policy_(policy), measured_(measured) {
    constexpr std::string_view header = "#{:>21}  {:<34} {:>12} {:>12} {:>10}\n";
    fmt::print("# memory-bound kernels (fp32)\n");
    fmt::print(header, "kernel", "size", "bytes", "time", "rate");
    fmt::print(header, "", "", "(B)", "(us)", "(GB/s)");
  }

  void measure(std::string_view kernel, const std::string& size, double charged_bytes,
               const std::function<void()>& call) {
    const Timing t = time_call(call, policy_);
    const int64_t recorded = int64_t(charged_bytes);
    measured_.add(
        core::KernelSample{.kernel = std::string(kernel), .bytes = recorded, .time_s = t.median_s},
        t.spread);
    fmt::print("{:>22}  {:<34} {:>12} {:>12.1f} {:>10.2f}\n", kernel, size, recorded,
               t.median_s * 1e6, double(recorded) / t.median_s / 1e9);
  }

 private:
  const TimingPolicy& policy_;
  Measured& measured_;
};

// Keeps a result the compiler would otherwise be free to drop with the loop computing it.
volatile double g_sink = 0;

// Layer norm, GELU, residual adds and biases over an activation [rows, width] (layer_forward,
// layer_backward).
void layer_kernels(Kernels& k, RandomTensors& random, int64_t rows, int64_t width,
                   KernelTable& table) {
  const double n = double(rows) * double(width);
  const std::string matrix = fmt::format("rows={} width={}", rows, width);
  const std::string elements = fmt::format("elements={}", rows * width);
  const Tensor x = random.uniform({rows, width}), dy = random.uniform({rows, width});
  const Tensor gamma = random.uniform({width}), beta = random.uniform({width});
  Tensor y({rows, width}), dx({rows, width}), mean({rows}), rstd({rows});
  Tensor dgamma = random.uniform({width}), dbeta = random.uniform({width});

  table.measure(bytes::kLayernorm, matrix,
                bytes::layernorm_forward(double(rows), double(width), kFp32),
                [&] { k.layernorm_forward(x, gamma, beta, 1e-5f, y, mean, rstd); });
  table.measure(bytes::kLayernormBackward, matrix,
                bytes::layernorm_backward(double(rows), double(width), kFp32),
                [&] { k.layernorm_backward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta); });
  // GELU maps each input to one output.
  const std::string gelu = fmt::format("inputs={} outputs={}", rows * width, rows * width);
  table.measure(bytes::kGelu, gelu, bytes::gelu_forward(n, n, kFp32),
                [&] { k.gelu_forward(x, y); });
  table.measure(bytes::kGeluBackward, gelu, bytes::gelu_backward(n, n, kFp32),
                [&] { k.gelu_backward(dy, x, dx); });
  // Forward: out = x + block(x) into a new tensor; backward: the block's input gradient
  // accumulates the residual's in place (k.add(dafter, grad, dafter)).
  table.measure(bytes::kResidual, elements, bytes::residual(n, kFp32), [&] { k.add(x, dy, y); });
  table.measure(bytes::kResidualBackward, elements, bytes::residual_backward(n, kFp32),
                [&] { k.add(dx, dy, dx); });
  table.measure(bytes::kBias, matrix, bytes::bias(double(rows), double(width), kFp32),
                [&] { k.add_bias(y, beta); });
  table.measure(bytes::kBiasBackward, matrix,
                bytes::bias_backward(double(rows), double(width), kFp32),
                [&] { k.bias_backward(dy, dbeta); });
}

// GptStage::embed and embed_backward with tp = 1 (their tensor-parallel steps are identities):
// token rows from wte, position rows from wpe, summed in place; backward scatters the gradient
// rows into both tables. The position ids are built once here, per microbatch there.
void embedding_kernels(Kernels& k, RandomTensors& random, const ProfileGrid& grid, int64_t tokens,
                       KernelTable& table) {
  const int64_t h = grid.activation_width;
  const std::string size = fmt::format("tokens={} hidden={}", tokens, h);
  const Tensor ids = random.tokens(tokens, grid.embedding_vocab);
  Tensor positions({tokens}, ElementType::i32);
  for (int64_t i = 0; i < tokens; ++i)
    positions.data<int32_t>()[i] = int32_t(i % grid.embedding_positions);
  const Tensor wte = random.uniform({grid.embedding_vocab, h}),
               wpe = random.uniform({grid.embedding_positions, h});
  Tensor wte_grad = random.uniform({grid.embedding_vocab, h}),
         wpe_grad = random.uniform({grid.embedding_positions, h});
  Tensor x({tokens, h}), position_rows({tokens, h});
  const Tensor grad = random.uniform({tokens, h});

  table.measure(bytes::kEmbedding, size, bytes::embedding_forward(double(tokens), double(h), kFp32),
                [&] {
                  k.embedding_forward(ids, wte, 0, x);
                  k.embedding_forward(positions, wpe, 0, position_rows);
                  k.add(x, position_rows, x);
                });
  table.measure(bytes::kEmbeddingBackward, size,
                bytes::embedding_backward(double(tokens), double(h), kFp32), [&] {
                  k.embedding_backward(grad, positions, 0, wpe_grad);
                  k.embedding_backward(grad, ids, 0, wte_grad);
                });
}

// GptStage::output_forward's loss after the logits GEMM and output_backward's gradient, with
// tp = 1: the max, Σ exp and target-logit all-reduces are identities, the rescale and loss loops
// run as there.
void cross_entropy_kernels(Kernels& k, RandomTensors& random, int64_t rows, int64_t vocab,
                           KernelTable& table) {
  const std::string size = fmt::format("tokens={} vocab={}", rows, vocab);
  const Tensor logits = random.uniform({rows, vocab}), targets = random.tokens(rows, vocab);
  Tensor row_max({rows}), sum_exp({rows}), target_logit({rows}), dlogits({rows, vocab});

  table.measure(bytes::kCrossEntropy, size,
                bytes::cross_entropy_forward(double(rows), double(vocab), kFp32), [&] {
                  k.cross_entropy_partials(logits, targets, 0, row_max, sum_exp, target_logit);
                  const Tensor local_max = row_max.clone();
                  float* sum = sum_exp.data<float>();
                  const float* mine = local_max.data<float>();
                  const float* global = row_max.data<float>();
                  for (int64_t r = 0; r < rows; ++r) sum[r] *= std::exp(mine[r] - global[r]);
                  double loss = 0;
                  for (int64_t r = 0; r < rows; ++r)
                    loss += std::log(double(sum[r])) + double(global[r]) -
                            double(target_logit.data<float>()[r]);
                  g_sink = loss / double(rows);
                });
  table.measure(bytes::kCrossEntropyBackward, size,
                bytes::cross_entropy_backward(double(rows), double(vocab), kFp32), [&] {
                  k.cross_entropy_backward(logits, targets, 0, row_max, sum_exp, 1.0f / float(rows),
                                           dlogits);
                });
}

// Optimizer::step over `parameters` values: its gradient-norm loop, and AdamW as it calls it for
// one parameter of that size.
void optimizer_kernels(Kernels& k, RandomTensors& random, int64_t parameters, KernelTable& table) {
  const std::string size = fmt::format("parameters={}", parameters);
  Tensor values = random.uniform({parameters}), m = random.uniform({parameters}),
         v = random.uniform({parameters});
  const Tensor grads = random.uniform({parameters});
  for (int64_t i = 0; i < parameters; ++i)
    v.data<float>()[i] *= v.data<float>()[i];  // a second moment is ≥ 0
  const std::vector<float> norm_weights(size_t(parameters), 1.0f);

  table.measure(bytes::kAdamw, size, bytes::adamw(double(parameters)),
                [&] { k.adamw(values, grads, m, v, 6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1); });
  table.measure(bytes::kGradNorm, size, bytes::grad_norm(double(parameters)), [&] {
    g_sink = weighted_sum_of_squares(grads.data<float>(), norm_weights.data(), parameters);
  });
}

}  // namespace

void measure_memory_kernels(Kernels& kernels, const ProfileGrid& grid, Measured& measured) {
  RandomTensors random;
  KernelTable table(grid.timing, measured);
  for (int64_t activation : grid.activation_bytes) {
    const int64_t elements = activation / int64_t(kFp32), rows = elements / grid.activation_width;
    layer_kernels(kernels, random, rows, grid.activation_width, table);
    embedding_kernels(kernels, random, grid, rows, table);
    optimizer_kernels(kernels, random, elements, table);
  }
  for (int64_t vocab : grid.vocab_shards)
    cross_entropy_kernels(kernels, random, grid.cross_entropy_tokens, vocab, table);
  std::fflush(stdout);
}

}  // namespace loom::exec::profile
