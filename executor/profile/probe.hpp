#pragma once
// A short fixed workload whose time tracks how fast this machine runs the executor's kernels
// right now. Shared (virtual) machines speed up and slow down by tens of percent from one
// minute to the next; timing the probe next to a profile and around a run shows how much of a
// prediction's error the machine's drift could explain (`loom bench fidelity`).

namespace loom::exec::profile {

// Seconds of the probe: cold-cache GEMMs in the three layouts, attention and a residual add at
// small-GPT shapes, medians summed.
double probe_seconds();

int run_probe(bool json);

}  // namespace loom::exec::profile
