#pragma once
// The CUDA backend's entry points, in plain C++ (no CUDA header), so that backend.cpp can call
// them in builds with CUDA. Only compiled when LOOM_HAVE_CUDA is defined.

#include "executor/kernels/kernels.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace loom::exec::cuda {

// The number of CUDA devices, or 0 with `reason` filled (no driver, no device, an error).
int device_count(std::string* reason);

// Selects `device_ordinal`, installs the caching device allocator for Device::cuda (high-water
// accounting as the CPU's: MemoryStats counts bytes handed to tensors; the pool's own reserve is
// reported separately), creates the compute stream, cuBLASLt handle and workspace, and returns
// the kernels. One per process.
std::unique_ptr<Kernels> make_cuda_kernels(int device_ordinal);

// Bytes of device memory the backend's caching allocator holds from the driver: blocks in use
// by tensors and its own buffers, plus blocks cached for reuse (what nvidia-smi shows, less the
// context). MemoryStats(Device::cuda) counts only the bytes tensors asked for.
int64_t device_pool_reserved_bytes();

// The stream every kernel of the backend runs on (a cudaStream_t, as void* to keep CUDA's headers
// out of this one). The NCCL communicator orders its work after it. Null before make_cuda_kernels.
void* compute_stream();

}  // namespace loom::exec::cuda
