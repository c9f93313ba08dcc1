#pragma once
// Where a device's bytes come from. Storage asks the allocator installed for its device; the CPU
// one is built in (64-byte aligned host memory), and a backend such as CUDA installs its own at
// start-up, so tensor.cpp needs no CUDA code and a CPU-only build reports a clear error instead.

#include "executor/tensor.hpp"

#include <cstddef>

namespace loom::exec {

// Plain function pointers: the backend's own code owns any state (streams, pools) behind them.
struct DeviceAllocator {
  void* (*allocate)(size_t bytes) = nullptr;  // never returns null: throws on failure
  void (*release)(void* data, size_t bytes) = nullptr;
  void (*fill_zero)(void* data, size_t bytes) = nullptr;
  void (*copy)(void* to, const void* from, size_t bytes) = nullptr;  // within this device
};

// Installs (or, with an empty DeviceAllocator, removes) the allocator of a device. Call it before
// any Storage of that device exists: a Storage returns its bytes to the allocator installed when
// it is destroyed. Removing the CPU allocator restores the built-in one.
void set_device_allocator(Device device, DeviceAllocator allocator);
// The allocator in use; throws loom::Error when the device has none (CUDA in a CPU-only build).
DeviceAllocator device_allocator(Device device);

}  // namespace loom::exec
