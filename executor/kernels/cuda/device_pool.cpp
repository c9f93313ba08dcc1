#include "executor/kernels/cuda/device_pool.hpp"

#include "core/error.hpp"
#include "executor/device_allocator.hpp"
#include "executor/kernels/cuda/cuda_check.hpp"
#include "executor/kernels/cuda/cuda_kernels.hpp"

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace loom::exec::cuda {
namespace {

// Small blocks round to 512 bytes, so similar activations share a free list without wasting
// much; blocks over 1 MiB round to 2 MiB, the granularity the driver maps memory in anyway.
constexpr size_t kSmallGranularity = 512;
constexpr size_t kLargeThreshold = size_t(1) << 20;
constexpr size_t kLargeGranularity = size_t(2) << 20;

size_t block_bytes(size_t bytes) {
  const size_t granularity = bytes > kLargeThreshold ? kLargeGranularity : kSmallGranularity;
  return (bytes + granularity - 1) / granularity * granularity;
}

class Pool {
 public:
  void* allocate(size_t bytes) {
    const size_t size = block_bytes(bytes);
    std::lock_guard lock(mutex_);
    std::vector<void*>& cached = free_[size];
    if (!cached.empty()) {
      void* data = cached.back();
      cached.pop_back();
      cached_bytes_ -= size;
      return data;
    }
    void* data = device_malloc(bytes, size);
    reserved_bytes_ += size;
    return data;
  }

  void release(void* data, size_t bytes) {
    const size_t size = block_bytes(bytes);
    std::lock_guard lock(mutex_);
    free_[size].push_back(data);
    cached_bytes_ += size;
  }

  int64_t reserved_bytes() {
    std::lock_guard lock(mutex_);
    return int64_t(reserved_bytes_);
  }

 private:
  // On a miss: cudaMalloc; when the device is full, the cached blocks go back to the driver (the
  // free lists may hold the memory another size needs) and the allocation is tried once more.
  void* device_malloc(size_t bytes, size_t size) {
    void* data = nullptr;
    cudaError_t result = cudaMalloc(&data, size);
    if (result == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky, but a later check_launch would report it
      const size_t cached_before = cached_bytes_;
      release_cached();
      result = cudaMalloc(&data, size);
      if (result == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        size_t free_bytes = 0, total_bytes = 0;
        check_runtime(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
        throw Error(
            "CUDA out of memory: {} bytes asked ({} as a pool block); {} of the device's {} bytes "
            "are free; "
            "the pool holds {} bytes for tensors and had {} cached (given back before retrying)",
            bytes, size, free_bytes, total_bytes, reserved_bytes_, cached_before);
      }
    }
    check_runtime(result, "cudaMalloc", {{"bytes", int64_t(size)}});
    return data;
  }

  // cudaFree waits for the device, so no queued kernel still reads a block given back here.
  void release_cached() {
    check_runtime(cudaDeviceSynchronize(), "cudaDeviceSynchronize (freeing the pool's cache)");
    for (auto& [size, blocks] : free_) {
      for (void* data : blocks)
        check_runtime(cudaFree(data), "cudaFree", {{"bytes", int64_t(size)}});
      reserved_bytes_ -= size * blocks.size();
      blocks.clear();
    }
    cached_bytes_ = 0;
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t reserved_bytes_ = 0;  // held from the driver: handed out + cached
  size_t cached_bytes_ = 0;
};

// Never destroyed: tensors in static objects may be released during static destruction, after
// a function-local Pool would be gone; the driver reclaims the memory at exit.
Pool& pool() {
  static Pool& instance = *new Pool();
  return instance;
}

std::atomic<cudaStream_t> pool_stream{nullptr};

void* allocate(size_t bytes) {
  return pool().allocate(bytes);
}
void release(void* data, size_t bytes) {
  pool().release(data, bytes);
}
void fill_zero(void* data, size_t bytes) {
  check_runtime(cudaMemsetAsync(data, 0, bytes, pool_stream.load()), "cudaMemsetAsync (fill_zero)",
                {{"bytes", int64_t(bytes)}});
}
void copy(void* to, const void* from, size_t bytes) {
  check_runtime(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, pool_stream.load()),
                "cudaMemcpyAsync (device to device)", {{"bytes", int64_t(bytes)}});
}

}  // namespace

void install_device_pool(cudaStream_t stream) {
  pool_stream.store(stream);
  set_device_allocator(Device::cuda, DeviceAllocator{allocate, release, fill_zero, copy});
}

int64_t device_pool_reserved_bytes() {
  return pool().reserved_bytes();
}

PoolBlock::PoolBlock(size_t bytes) : data_(pool().allocate(bytes)), bytes_(bytes) {}

PoolBlock::~PoolBlock() {
  pool().release(data_, bytes_);
}

}  // namespace loom::exec::cuda
