#pragma once
// Where and in what a model computes: the kernels' device, and the compute type of activations
// and working weights — bf16 for a bf16 plan on a backend that computes in it (Megatron's mixed
// precision: f32 masters, main gradients and optimizer state beside it), f32 otherwise. The CPU
// backend computes a bf16 plan in f32 (`loom-exec run` says so).

#include "core/plan.hpp"
#include "executor/kernels/kernels.hpp"

#include <vector>

namespace loom::exec {

// The compute type of `plan` on `kernels`. An fp16 plan on a backend that computes in half
// precision is refused (InvalidInput): fp16 needs loss scaling, which the executor does not do.
ElementType compute_type_for(const core::Plan& plan, const Kernels& kernels);

struct Precision {
  ElementType compute = ElementType::f32;
  Device device = Device::cpu;

  // Activations and their gradients.
  Tensor activation(std::vector<int64_t> shape) const { return Tensor(std::move(shape), compute, device); }
  // Norm statistics, log-sum-exps, loss partials.
  Tensor f32(std::vector<int64_t> shape) const { return Tensor(std::move(shape), ElementType::f32, device); }
  // Token ids copied from the host.
  Tensor tokens(const int32_t* values, int64_t count, Kernels& kernels) const;
};

}  // namespace loom::exec
