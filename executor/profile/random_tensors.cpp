#include "executor/profile/random_tensors.hpp"

#include "executor/bfloat16.hpp"

#include <algorithm>

namespace loom::exec::profile {
namespace {

// 4 Mi values (16 MiB of fp32): far more than a GEMM tile, a softmax row or a collective's chunk
// spans, and drawn in a few hundredths of a second.
constexpr int64_t kBlockElements = int64_t(4) << 20;

// `values` as `type` (f32 or bf16, rounded to nearest even), on the host.
Tensor host_as(const Tensor& values, ElementType type) {
  if (type == ElementType::f32) return values;
  Tensor converted(values.shape(), type, Device::cpu);
  const float* from = values.data<float>();
  uint16_t* to = converted.data<uint16_t>();
  for (int64_t i = 0; i < values.numel(); ++i) to[i] = float_to_bf16_bits(from[i]);
  return converted;
}

}  // namespace

Tensor on_device(Kernels& kernels, const Tensor& host) {
  if (kernels.device() == Device::cpu) return host;
  Tensor copy(host.shape(), host.type(), kernels.device());
  kernels.copy(host, copy);
  return copy;
}

Tensor RandomTensors::uniform(std::vector<int64_t> shape, ElementType type) {
  if (kernels_.device() != Device::cpu) return tiled(std::move(shape), type);
  Tensor values(std::move(shape), ElementType::f32, Device::cpu);
  fill(values.data<float>(), values.numel());
  return host_as(values, type);
}

void RandomTensors::fill(float* data, int64_t count) {
  // One engine draw per value, scaled by hand: the full profile fills gigabytes of GEMM operands.
  for (int64_t i = 0; i < count; ++i) data[i] = float(int32_t(engine_())) * 0x1p-31f;
}

Tensor RandomTensors::tiled(std::vector<int64_t> shape, ElementType type) {
  Tensor result(std::move(shape), type, kernels_.device());
  const int64_t count = result.numel();
  Tensor block({std::min(count, kBlockElements)}, ElementType::f32, Device::cpu);
  fill(block.data<float>(), block.numel());
  const Tensor source = host_as(block, type);
  const Tensor flat = result.reshaped({count});
  for (int64_t begin = 0; begin < count; begin += source.numel()) {
    const int64_t end = std::min(count, begin + source.numel());
    Tensor part = flat.rows(begin, end);
    kernels_.copy(source.rows(0, end - begin), part);
  }
  return result;
}

Tensor RandomTensors::tokens(int64_t count, int64_t vocab) {
  Tensor t({count}, ElementType::i32, Device::cpu);
  std::uniform_int_distribution<int32_t> id(0, int32_t(vocab - 1));
  for (int64_t i = 0; i < count; ++i) t.data<int32_t>()[i] = id(engine_);
  return on_device(kernels_, t);
}

}  // namespace loom::exec::profile
