#pragma once
// Tensor: a shape, an element type, a device and owned storage. Storage comes from the device's
// allocator, which keeps the byte counts the executor reports as peak memory (the figure
// `loom compare` shows next to the simulator's prediction).

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace loom::exec {

enum class Device : uint8_t { cpu, cuda };
enum class ElementType : uint8_t { f32, f64, bf16, i32 };
size_t element_size(ElementType type);
std::string_view to_string(ElementType type);

// Bytes in use and the high-water mark, per device, across the process. Thread-safe.
struct MemoryStats {
  int64_t current_bytes = 0;
  int64_t peak_bytes = 0;
};
MemoryStats memory_stats(Device device);
void reset_peak_memory(Device device);  // peak := current

// Owned, aligned bytes on a device, returned to the allocator (and the accounting) on destruction.
class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

// Row-major and contiguous. Copying a Tensor shares its storage (like a view); clone() copies.
class Tensor {
 public:
  Tensor() = default;
  // No default device: a tensor lives where the kernels that use it run (Kernels::device()).
  Tensor(std::vector<int64_t> shape, ElementType type, Device device);
  static Tensor zeros(std::vector<int64_t> shape, ElementType type, Device device);

  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(size_t axis) const { return shape_.at(axis); }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const;
  size_t bytes() const { return size_t(numel()) * element_size(type_); }
  ElementType type() const { return type_; }
  Device device() const { return device_; }
  bool defined() const { return storage_ != nullptr; }

  template <typename T>
  T* data() { return reinterpret_cast<T*>(static_cast<char*>(storage_->data()) + offset_); }
  template <typename T>
  const T* data() const { return reinterpret_cast<const T*>(static_cast<const char*>(storage_->data()) + offset_); }

  // The same storage seen with another shape of equal element count.
  Tensor reshaped(std::vector<int64_t> shape) const;
  // Rows [begin, end) of the first axis, sharing storage.
  Tensor rows(int64_t begin, int64_t end) const;
  Tensor clone() const;
  void fill_zero();
  std::string shape_string() const;  // "[4, 32, 64]"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  std::vector<int64_t> shape_;
  ElementType type_ = ElementType::f32;
  Device device_ = Device::cpu;
};

}  // namespace loom::exec
