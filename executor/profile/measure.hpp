#pragma once
// The profile's measurements, one file each. The kernel ones run on one rank and call the
// executor's Kernels exactly as the model code does (executor/model/gpt_layers.cpp,
// executor/engine/optimizer.cpp); the collectives run on every rank through the Communicator.
// Each appends its rows to `measured` and prints a table on standard output.

#include "executor/comm/communicator.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/profile/grid.hpp"
#include "executor/profile/measured.hpp"

#include <functional>

namespace loom::exec::profile {

// What the measurements compute in: what a bf16 plan computes in on these kernels (bf16 mixed
// precision on CUDA; fp32 on the CPU, whatever the plan says). The tables' dtype fields say it.
inline ElementType profiled_type(const Kernels& kernels) {
  return kernels.computes_in(ElementType::bf16) ? ElementType::bf16 : ElementType::f32;
}
inline core::DType dtype_of(ElementType type) {
  return type == ElementType::bf16 ? core::DType::bf16 : core::DType::fp32;
}

// The GEMM table in profiled_type, and its best rate as that dtype's peak.
void measure_gemms(Kernels& kernels, const ProfileGrid& grid, Measured& measured);
// The peak of `type` alone, without a table: the best rate of a few large square GEMMs (a GPU
// profile's fp32 peak, for plans in fp32).
void measure_gemm_peak(Kernels& kernels, ElementType type, const TimingPolicy& policy, Measured& measured);
void measure_attention(Kernels& kernels, const ProfileGrid& grid, Measured& measured);
void measure_memory_kernels(Kernels& kernels, const ProfileGrid& grid, Measured& measured);

// Collective over `world`: every rank calls it, and `wait` is how a rank with nothing to do
// waits for the others (at a barrier of world, without spinning). Buffers live on `kernels`'
// device. Rows land on world rank 0.
void measure_collectives(Communicator& world, Kernels& kernels, const std::function<void()>& wait,
                         const ProfileGrid& grid, Measured& measured);

}  // namespace loom::exec::profile
