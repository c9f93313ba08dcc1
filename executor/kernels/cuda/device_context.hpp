#pragma once
// What every launcher of the CUDA backend needs to know about where it runs: the one compute
// stream (all kernels, pool fills and copies are ordered on it, which is what makes the pool's
// immediate reuse of released blocks safe) and the size of the device, for grid sizes.

#include <cuda_runtime.h>

namespace loom::exec::cuda {

struct DeviceContext {
  cudaStream_t stream = nullptr;
  int multiprocessors = 1;
};

}  // namespace loom::exec::cuda
