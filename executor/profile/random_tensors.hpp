#pragma once
// Inputs of the profile's measurements: random values from a fixed seed, so that no kernel
// meets the special cases of constant data (all-equal softmax rows, zero gradients) and two
// runs measure the same thing.

#include "executor/tensor.hpp"

#include <cstdint>
#include <random>
#include <vector>

namespace loom::exec::profile {

class RandomTensors {
 public:
  explicit RandomTensors(uint32_t seed = 1234) : engine_(seed) {}

  // fp32 values uniform in [-1, 1).
  Tensor uniform(std::vector<int64_t> shape);
  void fill(float* data, int64_t count);
  // i32 token ids uniform in [0, vocab).
  Tensor tokens(int64_t count, int64_t vocab);

 private:
  std::mt19937 engine_;
};

}  // namespace loom::exec::profile
