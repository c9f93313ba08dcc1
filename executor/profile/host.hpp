#pragma once
// The machine a profile was measured on, for its device section and its provenance.

#include <cstdint>
#include <optional>
#include <string>

namespace loom::exec::profile {

struct HostInfo {
  std::string host_name;
  std::string cpu_name;      // /proc/cpuinfo's model name
  std::string mpi_library;   // MPI_Get_library_version's first line
  int64_t memory_bytes = 0;  // /proc/meminfo's MemTotal
  int64_t cores = 0;         // online CPUs, which the node's ranks share
  // The largest message the MPI library sends eagerly within a node (Open MPI's shared-memory
  // transport, read through the MPI tool interface); unknown for other libraries.
  std::optional<int64_t> eager_limit_bytes;
};

HostInfo describe_host();

// The CUDA device this process's kernels run on (the current one, which make_kernels selected).
struct GpuInfo {
  std::string name;          // "NVIDIA H100 80GB HBM3"
  int64_t memory_bytes = 0;  // global memory
  std::string software;      // "CUDA runtime 13.0, driver 13.0"
  int devices = 0;           // CUDA devices this process sees
};

// Throws loom::Error in a build without the CUDA backend, or when the runtime cannot say.
GpuInfo describe_cuda_device();

}  // namespace loom::exec::profile
