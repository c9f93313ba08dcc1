#pragma once
// Inputs of the profile's measurements: random values from a fixed seed, so that no kernel
// meets the special cases of constant data (all-equal softmax rows, zero gradients) and two
// runs measure the same thing. Values are drawn on the host and copied to the kernels' device.

#include "executor/kernels/kernels.hpp"

#include <cstdint>
#include <random>
#include <vector>

namespace loom::exec::profile {

// The tensor on `kernels`' device: `host` itself on the CPU, else a copy of it.
Tensor on_device(Kernels& kernels, const Tensor& host);

class RandomTensors {
 public:
  explicit RandomTensors(Kernels& kernels, uint32_t seed = 1234) : kernels_(kernels), engine_(seed) {}

  // Values uniform in [-1, 1), of `type` (f32 or bf16), on the kernels' device.
  Tensor uniform(std::vector<int64_t> shape, ElementType type = ElementType::f32);
  // i32 token ids uniform in [0, vocab), on the kernels' device.
  Tensor tokens(int64_t count, int64_t vocab);

 private:
  void fill(float* data, int64_t count);
  // A device tensor of `type` filled by repeating one random host block: the GPU grids' operands
  // reach gigabytes, which one engine draw per value would take a minute to fill.
  Tensor tiled(std::vector<int64_t> shape, ElementType type);

  Kernels& kernels_;
  std::mt19937 engine_;
};

}  // namespace loom::exec::profile
