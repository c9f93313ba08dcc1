#pragma once
// A short fixed workload whose time tracks how fast this machine runs the executor's kernels
// right now. Shared (virtual) machines speed up and slow down by tens of percent from one
// minute to the next; timing the probe next to a profile and around a run shows how much of a
// prediction's error the machine's drift could explain (`loom bench fidelity`). Run on several
// ranks at once, it shows what ranks computing side by side do to each other (shared memory
// bandwidth and caches, vCPUs that are hyperthreads of one core): the load a profile records.

#include "core/profile.hpp"
#include "executor/comm/communicator.hpp"
#include "executor/kernels/kernels.hpp"

#include <cstdint>

namespace loom::exec::profile {

// Seconds of the probe on `kernels` (with their threads): cold-cache GEMMs in the three layouts,
// attention and a residual add at small-GPT shapes, medians summed.
double probe_seconds(Kernels& kernels);
// The same on one thread.
double probe_seconds();

// Every rank of `world` calls it. Alternately, `rounds` times: world rank 0 runs the probe alone
// (the others wait without spinning), then the first `busy_ranks` ranks of each node run it at
// once. The load is rank 0's median time among them over its median time alone.
core::MeasuredLoad measure_load(Communicator& world, Kernels& kernels, int64_t busy_ranks, int rounds = 3);

// `loom-exec probe`: one rank prints its probe time; under mpirun every rank runs it at the same
// moment (after a barrier) and rank 0 prints the mean and each rank's time.
int run_probe(bool json, int threads);

}  // namespace loom::exec::profile
