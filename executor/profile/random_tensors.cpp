#include "executor/profile/random_tensors.hpp"

namespace loom::exec::profile {

Tensor RandomTensors::uniform(std::vector<int64_t> shape) {
  Tensor t(std::move(shape));
  fill(t.data<float>(), t.numel());
  return t;
}

void RandomTensors::fill(float* data, int64_t count) {
  // One engine draw per value, scaled by hand: the full profile fills gigabytes of GEMM operands.
  for (int64_t i = 0; i < count; ++i) data[i] = float(int32_t(engine_())) * 0x1p-31f;
}

Tensor RandomTensors::tokens(int64_t count, int64_t vocab) {
  Tensor t({count}, ElementType::i32);
  std::uniform_int_distribution<int32_t> id(0, int32_t(vocab - 1));
  for (int64_t i = 0; i < count; ++i) t.data<int32_t>()[i] = id(engine_);
  return t;
}

}  // namespace loom::exec::profile
