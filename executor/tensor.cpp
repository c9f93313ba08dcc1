#include "executor/tensor.hpp"

#include "core/error.hpp"
#include "executor/device_allocator.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

namespace loom::exec {
namespace {

// 64 bytes: a cache line and an AVX-512 register, so Eigen's aligned loads are always legal.
constexpr size_t kCpuAlignment = 64;
constexpr size_t kDeviceCount = 2;

size_t device_index(Device device) {
  return static_cast<size_t>(device);
}

std::string_view device_name(Device device) {
  return device == Device::cpu ? "cpu" : "cuda";
}

void* cpu_allocate(size_t bytes) {
  // std::aligned_alloc wants a size that is a multiple of the alignment.
  size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  void* data = std::aligned_alloc(kCpuAlignment, rounded);
  if (data == nullptr) throw Error("out of host memory allocating {} bytes", bytes);
  return data;
}
void cpu_release(void* data, size_t /*bytes*/) {
  std::free(data);
}
void cpu_fill_zero(void* data, size_t bytes) {
  std::memset(data, 0, bytes);
}
void cpu_copy(void* to, const void* from, size_t bytes) {
  std::memcpy(to, from, bytes);
}

constexpr DeviceAllocator kCpuAllocator{cpu_allocate, cpu_release, cpu_fill_zero, cpu_copy};

// The registry is read on every allocation and written once at start-up; a mutex keeps a late
// installation from tearing the four pointers apart.
struct AllocatorRegistry {
  std::mutex mutex;
  std::array<DeviceAllocator, kDeviceCount> allocators{kCpuAllocator, DeviceAllocator{}};
};
AllocatorRegistry& registry() {
  static AllocatorRegistry instance;
  return instance;
}

struct DeviceMemoryCounters {
  std::atomic<int64_t> current_bytes{0};
  std::atomic<int64_t> peak_bytes{0};
};
std::array<DeviceMemoryCounters, kDeviceCount>& counters() {
  static std::array<DeviceMemoryCounters, kDeviceCount> instance;
  return instance;
}

void count_allocation(Device device, int64_t bytes) {
  DeviceMemoryCounters& c = counters()[device_index(device)];
  int64_t now = c.current_bytes.fetch_add(bytes) + bytes;
  int64_t peak = c.peak_bytes.load();
  // Another thread may raise the peak between our load and store; retry until ours is not higher.
  while (now > peak && !c.peak_bytes.compare_exchange_weak(peak, now)) {
  }
}

void count_release(Device device, int64_t bytes) {
  counters()[device_index(device)].current_bytes.fetch_sub(bytes);
}

}  // namespace

void set_device_allocator(Device device, DeviceAllocator allocator) {
  bool empty = allocator.allocate == nullptr;
  if (!empty && (allocator.release == nullptr || allocator.fill_zero == nullptr ||
                 allocator.copy == nullptr)) {
    throw Error("the {} allocator must provide allocate, release, fill_zero and copy",
                device_name(device));
  }
  if (empty && device == Device::cpu) allocator = kCpuAllocator;
  std::lock_guard lock(registry().mutex);
  registry().allocators[device_index(device)] = allocator;
}

DeviceAllocator device_allocator(Device device) {
  DeviceAllocator allocator;
  {
    std::lock_guard lock(registry().mutex);
    allocator = registry().allocators[device_index(device)];
  }
  if (allocator.allocate == nullptr) {
    throw Error("cannot allocate {} memory: CUDA is not available in this build of Loom",
                device_name(device));
  }
  return allocator;
}

size_t element_size(ElementType type) {
  switch (type) {
    case ElementType::f32:
      return 4;
    case ElementType::f64:
      return 8;
    case ElementType::bf16:
      return 2;
    case ElementType::i32:
      return 4;
  }
  throw Error("unknown element type {}", static_cast<int>(type));
}

std::string_view to_string(ElementType type) {
  switch (type) {
    case ElementType::f32:
      return "f32";
    case ElementType::f64:
      return "f64";
    case ElementType::bf16:
      return "bf16";
    case ElementType::i32:
      return "i32";
  }
  return "unknown";
}

MemoryStats memory_stats(Device device) {
  const DeviceMemoryCounters& c = counters()[device_index(device)];
  return MemoryStats{c.current_bytes.load(), c.peak_bytes.load()};
}

void reset_peak_memory(Device device) {
  DeviceMemoryCounters& c = counters()[device_index(device)];
  c.peak_bytes.store(c.current_bytes.load());
}

// Zero bytes allocate nothing (an empty tensor), so allocators never see a zero-sized request.
Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  DeviceAllocator allocator = device_allocator(device);
  if (bytes_ > 0) data_ = allocator.allocate(bytes_);
  count_allocation(device_, static_cast<int64_t>(bytes_));
}

Storage::~Storage() {
  if (data_ != nullptr) {
    DeviceAllocator allocator;
    {
      std::lock_guard lock(registry().mutex);
      allocator = registry().allocators[device_index(device_)];
    }
    if (allocator.release != nullptr) allocator.release(data_, bytes_);
  }
  count_release(device_, static_cast<int64_t>(bytes_));
}

Tensor::Tensor(std::vector<int64_t> shape, ElementType type, Device device)
    : shape_(std::move(shape)), type_(type), device_(device) {
  size_t count = 1;
  for (int64_t extent : shape_) {
    if (extent < 0) throw Error("tensor shape {} has a negative extent", shape_string());
    count *= size_t(extent);
  }
  // Not bytes(): numel() reads 0 until the storage exists.
  storage_ = std::make_shared<Storage>(count * element_size(type_), device_);
}

Tensor Tensor::zeros(std::vector<int64_t> shape, ElementType type, Device device) {
  Tensor tensor(std::move(shape), type, device);
  tensor.fill_zero();
  return tensor;
}

// An undefined tensor holds nothing; a defined one with an empty shape is a scalar.
int64_t Tensor::numel() const {
  if (!defined()) return 0;
  int64_t count = 1;
  for (int64_t extent : shape_) count *= extent;
  return count;
}

Tensor Tensor::reshaped(std::vector<int64_t> shape) const {
  Tensor view = *this;
  view.shape_ = std::move(shape);
  if (view.numel() != numel()) {
    throw Error("cannot reshape a tensor of shape {} to {}", shape_string(), view.shape_string());
  }
  return view;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  if (rank() == 0 || begin < 0 || begin > end || end > dim(0)) {
    throw Error("rows [{}, {}) out of range for a tensor of shape {}", begin, end, shape_string());
  }
  Tensor view = *this;
  view.shape_[0] = end - begin;
  size_t row_bytes = dim(0) == 0 ? 0 : bytes() / size_t(dim(0));
  view.offset_ += size_t(begin) * row_bytes;
  return view;
}

Tensor Tensor::clone() const {
  if (!defined()) return Tensor();
  Tensor copy(shape_, type_, device_);
  if (bytes() > 0) device_allocator(device_).copy(copy.data<char>(), data<char>(), bytes());
  return copy;
}

void Tensor::fill_zero() {
  if (!defined() || bytes() == 0) return;
  device_allocator(device_).fill_zero(data<char>(), bytes());
}

std::string Tensor::shape_string() const {
  return fmt::format("[{}]", fmt::join(shape_, ", "));
}

}  // namespace loom::exec
