#pragma once
// A short fixed workload whose time tracks how fast this machine runs the executor's kernels
// right now. Shared (virtual) machines speed up and slow down by tens of percent from one
// minute to the next; timing the probe next to a profile and next to a run tells the two
// apart from errors of the simulator (`loom bench fidelity`).

namespace loom::exec::profile {

// Seconds of the probe: cold-cache GEMMs in the three layouts at small-GPT shapes and a
// memory-bound pass, medians summed.
double probe_seconds();

int run_probe(bool json);

}  // namespace loom::exec::profile
