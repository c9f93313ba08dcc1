#pragma once
// The profile's measurements, one file each. The kernel ones run on one rank and call the
// executor's Kernels exactly as the model code does (executor/model/gpt_layers.cpp,
// executor/engine/optimizer.cpp); the collectives run on every rank through the Communicator.
// Each appends its rows to `measured` and prints a table on standard output.

#include "executor/comm/communicator.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/profile/grid.hpp"
#include "executor/profile/measured.hpp"

namespace loom::exec::profile {

void measure_gemms(Kernels& kernels, const ProfileGrid& grid, Measured& measured);
void measure_attention(Kernels& kernels, const ProfileGrid& grid, Measured& measured);
void measure_memory_kernels(Kernels& kernels, const ProfileGrid& grid, Measured& measured);

// Collective over `world`: every rank calls it, and `wait` is how a rank with nothing to do
// waits for the others (at a barrier of world, without spinning). Rows land on world rank 0.
void measure_collectives(Communicator& world, const std::function<void()>& wait,
                         const ProfileGrid& grid, Measured& measured);

}  // namespace loom::exec::profile
