#include "executor/profile/probe.hpp"

#include "executor/kernels/kernels.hpp"
#include "executor/profile/random_tensors.hpp"
#include "executor/profile/timing.hpp"

#include <fmt/format.h>

namespace loom::exec::profile {

// The CPU's kernels, which finish before they return: host clocks time them (time_call).
double probe_seconds() {
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  RandomTensors random(*kernels);
  TimingPolicy policy;
  policy.min_repeats = 25;  // a median over many calls: single calls vary by 20 % here
  policy.min_total_s = 0.05;
  double total = 0;
  // Small GPTs' shapes (loom-tiny's micro-batch of 128 tokens, widths 128 to 512): cache- and
  // memory-bound, they follow what neighbours on a shared machine do to caches and memory
  // bandwidth as well as the clock, where a large GEMM would follow the clock alone.
  for (const auto& [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{128, 384, 128}, {128, 512, 128}, {128, 128, 512}}) {
    const Tensor a = random.uniform({m, k}), b = random.uniform({k, n}), bt = random.uniform({n, k});
    const Tensor at = random.uniform({k, m});
    Tensor c = random.uniform({m, n});
    total += time_call([&] { kernels->matmul(a, false, b, false, c); }, policy).median_s;
    total += time_call([&] { kernels->matmul(a, false, bt, true, c); }, policy).median_s;
    total += time_call([&] { kernels->matmul(at, true, b, false, c, 1.0f, 1.0f); }, policy).median_s;
  }
  const Tensor x = random.uniform({int64_t(1) << 18}), y = random.uniform({int64_t(1) << 18});
  Tensor sum({int64_t(1) << 18}, ElementType::f32, Device::cpu);
  total += time_call([&] { kernels->add(x, y, sum); }, policy).median_s;
  const int64_t batch = 2, heads = 4, seq = 64, head_dim = 32;
  const Tensor qkv = random.uniform({batch, seq, 3 * heads * head_dim});
  Tensor out({batch, seq, heads * head_dim}, ElementType::f32, Device::cpu),
      probabilities({batch, heads, seq, seq}, ElementType::f32, Device::cpu);
  total += time_call([&] { kernels->attention_forward(qkv, heads, out, probabilities); }, policy).median_s;
  return total;
}

int run_probe(bool json) {
  const double seconds = probe_seconds();
  if (json) fmt::print("{{\"probe_s\": {}}}\n", seconds);
  else fmt::print("probe: {:.3f} ms\n", seconds * 1e3);
  return 0;
}

}  // namespace loom::exec::profile
