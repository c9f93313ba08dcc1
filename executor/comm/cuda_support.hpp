#pragma once
// What the device communicators (NCCL, and MPI staged through host memory) share of the CUDA
// runtime: the compute stream they order their work on, and CUDA errors as loom::Error. Only in
// builds with CUDA.

#include "core/error.hpp"
#include "executor/kernels/cuda/cuda_kernels.hpp"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <string>
#include <string_view>

namespace loom::exec::cuda {

inline std::string cuda_failure(cudaError_t result, std::string_view what) {
  return fmt::format("CUDA {} failed: {} ({})", what, cudaGetErrorString(result),
                     cudaGetErrorName(result));
}

inline void check_cuda(cudaError_t result, std::string_view what) {
  if (result != cudaSuccess) throw Error(cuda_failure(result, what));
}

// The CUDA backend's compute stream, for `operation`. A null one would be CUDA's legacy default
// stream, which orders nothing the way the kernels need: it means the kernels were not made yet.
inline cudaStream_t compute_stream_for(std::string_view operation) {
  auto* stream = static_cast<cudaStream_t>(compute_stream());
  if (stream == nullptr)
    throw Error(
        "{}: the CUDA backend has no compute stream (make the CUDA kernels before the "
        "communicator)",
        operation);
  return stream;
}

}  // namespace loom::exec::cuda
