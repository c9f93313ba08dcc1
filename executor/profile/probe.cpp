#include "executor/profile/probe.hpp"

#include "executor/kernels/kernels.hpp"
#include "executor/profile/random_tensors.hpp"
#include "executor/profile/timing.hpp"

#include <fmt/format.h>

namespace loom::exec::profile {

double probe_seconds() {
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  RandomTensors random;
  TimingPolicy policy;
  policy.min_repeats = 9;
  policy.min_total_s = 0.05;
  double total = 0;
  for (const auto& [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{128, 512, 128}, {128, 128, 512}, {512, 512, 512}}) {
    const Tensor a = random.uniform({m, k}), b = random.uniform({k, n}), bt = random.uniform({n, k});
    const Tensor at = random.uniform({k, m});
    Tensor c = random.uniform({m, n});
    total += time_call([&] { kernels->matmul(a, false, b, false, c); }, policy).median_s;
    total += time_call([&] { kernels->matmul(a, false, bt, true, c); }, policy).median_s;
    total += time_call([&] { kernels->matmul(at, true, b, false, c, 1.0f, 1.0f); }, policy).median_s;
  }
  const Tensor x = random.uniform({int64_t(1) << 20}), y = random.uniform({int64_t(1) << 20});
  Tensor sum({int64_t(1) << 20});
  total += time_call([&] { kernels->add(x, y, sum); }, policy).median_s;
  return total;
}

int run_probe(bool json) {
  const double seconds = probe_seconds();
  if (json) fmt::print("{{\"probe_s\": {}}}\n", seconds);
  else fmt::print("probe: {:.3f} ms\n", seconds * 1e3);
  return 0;
}

}  // namespace loom::exec::profile
