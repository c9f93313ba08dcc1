#pragma once
// CUDA failures as loom::Error naming the call or kernel and the extents it was given. The checks
// are inline (one comparison on the success path); the message is built out of line in
// cuda_check.cpp, because fmt's compile-time format checks do not compile under nvcc.

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

namespace loom::exec::cuda {

// One named extent of the failed call, for its message: {"rows", 8192}.
struct Extent {
  const char* name;
  int64_t value;
};
using Extents = std::initializer_list<Extent>;

[[noreturn]] void throw_cuda_failure(cudaError_t result, const char* call, Extents extents);

inline void check_runtime(cudaError_t result, const char* call, Extents extents = {}) {
  if (result != cudaSuccess) throw_cuda_failure(result, call, extents);
}

// After the launches of one kernel function: a bad launch configuration shows up here. An error
// recorded by an earlier launch of the sequence is not cleared by a later success, so one check
// after a multi-kernel sequence covers all of it. Faults inside a kernel surface at the next
// synchronisation, named by that call.
inline void check_launch(const char* kernel, Extents extents) {
  check_runtime(cudaGetLastError(), kernel, extents);
}

}  // namespace loom::exec::cuda
