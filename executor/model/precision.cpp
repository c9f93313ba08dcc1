#include "executor/model/precision.hpp"

#include "core/error.hpp"

#include <cstring>

namespace loom::exec {

ElementType compute_type_for(const core::Plan& plan, const Kernels& kernels) {
  switch (plan.training.dtype) {
    case core::DType::fp32: return ElementType::f32;
    case core::DType::bf16: return kernels.computes_in(ElementType::bf16) ? ElementType::bf16 : ElementType::f32;
    case core::DType::fp16:
      if (kernels.computes_in(ElementType::bf16))
        throw InvalidInput("dtype fp16: the executor has no loss scaling, which fp16 training needs; use bf16 or "
                           "fp32");
      return ElementType::f32;
  }
  return ElementType::f32;
}

Tensor Precision::tokens(const int32_t* values, int64_t count, Kernels& kernels) const {
  Tensor host({count}, ElementType::i32, Device::cpu);
  std::memcpy(host.data<int32_t>(), values, size_t(count) * sizeof(int32_t));
  if (device == Device::cpu) return host;
  Tensor on_device({count}, ElementType::i32, device);
  kernels.copy(host, on_device);
  return on_device;
}

}  // namespace loom::exec
