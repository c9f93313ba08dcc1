#pragma once
// The CUDA backend's caching allocator, installed as Device::cuda's DeviceAllocator. cudaMalloc
// and cudaFree synchronise the device and cost tens of microseconds, and a training step
// allocates and frees the same sizes every microbatch: the pool keeps released blocks in free
// lists by (rounded) size and hands them out again. A released block may be reused at once:
// every kernel, fill and copy of the backend runs on the one compute stream, so work queued on
// the old tensor finishes before work queued on the new one starts.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace loom::exec::cuda {

// Installs the pool for Device::cuda; its fill_zero and copy run on `stream`. Once per process.
void install_device_pool(cudaStream_t stream);

// A block of the backend's own (the cuBLASLt workspace): from the pool, but not a tensor, so not
// counted in MemoryStats.
class PoolBlock {
 public:
  explicit PoolBlock(size_t bytes);
  ~PoolBlock();
  PoolBlock(const PoolBlock&) = delete;
  PoolBlock& operator=(const PoolBlock&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace loom::exec::cuda
