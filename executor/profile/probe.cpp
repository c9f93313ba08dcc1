#include "executor/profile/probe.hpp"

#include "executor/comm/world.hpp"  // make_world_communicator, node_local_rank
#include "executor/profile/random_tensors.hpp"
#include "executor/profile/timing.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace loom::exec::profile {
namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace

// The CPU's kernels, which finish before they return: host clocks time them (time_call).
double probe_seconds(Kernels& kernels) {
  RandomTensors random(kernels);
  TimingPolicy policy;
  // A median over many calls (single calls vary by 20 % here), but not too many: each call
  // evicts 64 MiB of caches first, which made the probe 3 s of a run's 5 s in `bench fidelity`.
  policy.min_repeats = 11;
  policy.min_total_s = 0.02;
  double total = 0;
  // Small GPTs' shapes (loom-tiny's micro-batch of 128 tokens, widths 128 to 512): cache- and
  // memory-bound, they follow what neighbours on a shared machine do to caches and memory
  // bandwidth as well as the clock, where a large GEMM would follow the clock alone.
  for (const auto& [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{128, 384, 128}, {128, 512, 128}, {128, 128, 512}}) {
    const Tensor a = random.uniform({m, k}), b = random.uniform({k, n}), bt = random.uniform({n, k});
    const Tensor at = random.uniform({k, m});
    Tensor c = random.uniform({m, n});
    total += time_call([&] { kernels.matmul(a, false, b, false, c); }, policy).median_s;
    total += time_call([&] { kernels.matmul(a, false, bt, true, c); }, policy).median_s;
    total += time_call([&] { kernels.matmul(at, true, b, false, c, 1.0f, 1.0f); }, policy).median_s;
  }
  const Tensor x = random.uniform({int64_t(1) << 18}), y = random.uniform({int64_t(1) << 18});
  Tensor sum({int64_t(1) << 18}, ElementType::f32, Device::cpu);
  total += time_call([&] { kernels.add(x, y, sum); }, policy).median_s;
  const int64_t batch = 2, heads = 4, seq = 64, head_dim = 32;
  const Tensor qkv = random.uniform({batch, seq, 3 * heads * head_dim});
  Tensor out({batch, seq, heads * head_dim}, ElementType::f32, Device::cpu),
      probabilities({batch, heads, seq, seq}, ElementType::f32, Device::cpu);
  total += time_call([&] { kernels.attention_forward(qkv, heads, out, probabilities); }, policy).median_s;
  return total;
}

double probe_seconds() {
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  return probe_seconds(*kernels);
}

core::MeasuredLoad measure_load(Communicator& world, Kernels& kernels, int64_t busy_ranks, int rounds) {
  const bool root = world.rank() == 0, busy = node_local_rank() < busy_ranks;
  std::vector<double> alone, loaded;
  // Alternated, so that a drift of the machine's speed touches both alike.
  for (int round = 0; round < rounds; ++round) {
    world.idle_barrier();
    if (root) alone.push_back(probe_seconds(kernels));
    world.idle_barrier();
    if (busy) {
      const double seconds = probe_seconds(kernels);
      if (root) loaded.push_back(seconds);
    }
  }
  world.idle_barrier();
  if (!root) return {};
  return {.tables_busy_ranks_per_node = 1, .probe_busy_ranks_per_node = busy_ranks,
          .slowdown = median(loaded) / median(alone)};
}

int run_probe(bool json, int threads) {
  std::unique_ptr<Communicator> world = make_world_communicator(Backend::cpu);
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(threads);
  std::vector<double> seconds(size_t(world->size()), 0.0);
  world->barrier();  // every rank starts at once: they load the machine together
  seconds[size_t(world->rank())] = probe_seconds(*kernels);
  world->all_reduce_sum(seconds.data(), seconds.size());
  if (world->rank() != 0) return 0;
  double mean = 0;
  for (double s : seconds) mean += s / double(seconds.size());
  if (json)
    fmt::print("{{\"probe_s\": {}, \"ranks\": {}, \"rank_probe_s\": [{}]}}\n", mean, seconds.size(),
               fmt::join(seconds, ", "));
  else if (seconds.size() == 1)
    fmt::print("probe: {:.3f} ms\n", mean * 1e3);
  else
    fmt::print("probe on {} ranks at once: {:.3f} ms on average\n", seconds.size(), mean * 1e3);
  return 0;
}

}  // namespace loom::exec::profile
