#pragma once
// How `loom-exec profile` times one call: warm-up, then repeats until the median is worth
// keeping, bounded so that the large shapes of a grid do not dominate its run time.

#include "executor/kernels/kernels.hpp"

#include <functional>
#include <vector>

namespace loom::exec::profile {

struct TimingPolicy {
  int min_repeats = 5;
  double min_total_s = 0.02;  // short calls repeat until their sum reaches this…
  int max_repeats = 50;       // …but never more often than this,
  double max_total_s = 0.5;   // and long calls stop here, even below min_repeats (at least one)
  // Evict the caches before each timed call (untimed). In a training step a kernel's operands
  // were mostly written long before (activations saved in the forward and read in the
  // backward, weights touched once per microbatch), so they come from memory, not from the
  // caches a back-to-back repeat leaves warm: measured on this project's 2-core EPYC VM, a
  // 128×128×512 GEMM took 112 µs warm and 133–150 µs cold, and kernels timed warm predicted a
  // loom-tiny step 35 % short.
  bool cold_caches = true;

  // Whether `repeats` timed calls that took `total_s` together are enough.
  bool enough(int repeats, double total_s) const;
};

// The median of the timed calls and their spread, (max − min) / median.
struct Timing {
  double median_s = 0;
  double spread = 0;
};

double seconds_now();  // a monotonic clock

// Writes a buffer larger than the last-level cache a rank can count on, so that whatever a
// call touched before is gone from every cache level.
void evict_caches();

Timing summarize(std::vector<double> times_s);

// One warm-up call, then timed calls until the policy has enough. For host code: a call that
// only queues work (a GPU kernel) needs KernelTimer.
Timing time_call(const std::function<void()>& call, const TimingPolicy& policy);

// time_call for calls of a backend's kernels. The CUDA backend's calls return as soon as their
// kernels are queued, so the clock is read only after Kernels::synchronize(), before the call
// (earlier work is not this call's) and after it (the call's own kernels have run). Cold caches
// are the host's on the CPU and the GPU's L2 on CUDA (a device buffer larger than it, rewritten).
class KernelTimer {
 public:
  KernelTimer(Kernels& kernels, const TimingPolicy& policy);
  Timing operator()(const std::function<void()>& call);
  const TimingPolicy& policy() const { return policy_; }

 private:
  Kernels& kernels_;
  TimingPolicy policy_;
  Tensor l2_flush_;  // CUDA with cold caches only
};

// The number of timed calls the policy asks for when each lasts `call_s`. The ranks of a
// collective must call it equally often, so they agree on this count before timing it.
int planned_repeats(double call_s, const TimingPolicy& policy);

}  // namespace loom::exec::profile
