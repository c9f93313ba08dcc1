#include "executor/profile/timing.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>

namespace loom::exec::profile {

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
  call();  // first-touch page faults, cold caches and lazily built state stay out of the median
  std::vector<double> times;
  double total = 0;
  do {
    if (policy.cold_caches) evict_caches();
    const double start = seconds_now();
    call();
    times.push_back(seconds_now() - start);
    total += times.back();
  } while (!policy.enough(int(times.size()), total));
  return summarize(std::move(times));
}

int planned_repeats(double call_s, const TimingPolicy& policy) {
  int repeats = 1;
  while (!policy.enough(repeats, repeats * call_s)) ++repeats;
  return repeats;
}

}  // namespace loom::exec::profile
