#include "executor/kernels/cuda/cuda_check.hpp"

#include "core/error.hpp"

#include <fmt/format.h>

#include <string>

namespace loom::exec::cuda {

void throw_cuda_failure(cudaError_t result, const char* call, Extents extents) {
  std::string shape;
  for (const Extent& extent : extents)
    shape += fmt::format("{}{} {}", shape.empty() ? "" : ", ", extent.name, extent.value);
  throw Error("CUDA {}{} failed: {} ({})", call, shape.empty() ? "" : " [" + shape + "]",
              cudaGetErrorString(result), cudaGetErrorName(result));
}

}  // namespace loom::exec::cuda
