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

}  // namespace loom::exec::profile
