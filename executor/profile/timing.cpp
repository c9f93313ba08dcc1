#include "executor/profile/timing.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>

namespace loom::exec::profile {
namespace {

// One warm-up call (first-touch page faults, cold caches and lazily built state stay out of the
// median), then timed calls. `evict` runs untimed before each; `finish` waits for what a call
// queued and runs before each clock read.
Timing repeat_timed(const std::function<void()>& call, const TimingPolicy& policy, const std::function<void()>& evict,
                    const std::function<void()>& finish) {
  call();
  std::vector<double> times;
  double total = 0;
  do {
    if (evict) evict();
    if (finish) finish();
    const double start = seconds_now();
    call();
    if (finish) finish();
    times.push_back(seconds_now() - start);
    total += times.back();
  } while (!policy.enough(int(times.size()), total));
  return summarize(std::move(times));
}

// 128 MiB of fp32: beyond the L2 cache of current data-centre GPUs (40 MiB on A100, 50 MiB on
// H100 and H200).
constexpr int64_t kL2FlushElements = int64_t(32) << 20;

}  // namespace

bool TimingPolicy::enough(int repeats, double total_s) const {
  return repeats >= max_repeats || total_s >= max_total_s ||
         (repeats >= min_repeats && total_s >= min_total_s);
}

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void evict_caches() {
  // 64 MiB: beyond the L3 share of a core on current server CPUs (32 MiB per EPYC CCD, under
  // 2 MiB per core on Xeons); virtual machines often report no meaningful cache size.
  static std::vector<char> buffer(size_t(64) << 20);
  for (size_t i = 0; i < buffer.size(); i += 64) buffer[i] = char(buffer[i] + 1);
}

Timing summarize(std::vector<double> times_s) {
  assert(!times_s.empty());
  std::sort(times_s.begin(), times_s.end());
  const size_t n = times_s.size();
  const double median = n % 2 == 1 ? times_s[n / 2] : 0.5 * (times_s[n / 2 - 1] + times_s[n / 2]);
  return {median, median > 0 ? (times_s.back() - times_s.front()) / median : 0.0};
}

Timing time_call(const std::function<void()>& call, const TimingPolicy& policy) {
  return repeat_timed(call, policy, policy.cold_caches ? std::function<void()>(evict_caches) : nullptr, nullptr);
}

KernelTimer::KernelTimer(Kernels& kernels, const TimingPolicy& policy) : kernels_(kernels), policy_(policy) {
  if (policy.cold_caches && kernels.device() != Device::cpu)
    l2_flush_ = Tensor::zeros({kL2FlushElements}, ElementType::f32, kernels.device());
}

Timing KernelTimer::operator()(const std::function<void()>& call) {
  std::function<void()> evict;
  if (policy_.cold_caches)
    evict = l2_flush_.defined() ? std::function<void()>([this] { kernels_.scale(l2_flush_, 1.0f); })
                                : std::function<void()>(evict_caches);
  return repeat_timed(call, policy_, evict, [this] { kernels_.synchronize(); });
}

int planned_repeats(double call_s, const TimingPolicy& policy) {
  int repeats = 1;
  while (!policy.enough(repeats, repeats * call_s)) ++repeats;
  return repeats;
}

}  // namespace loom::exec::profile
