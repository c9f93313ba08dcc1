#include "executor/profile/host.hpp"

#include "core/error.hpp"
#include "executor/comm/mpi_session.hpp"  // the MPI library's version and control variables

#include <fmt/format.h>
#include <unistd.h>

#if defined(LOOM_HAVE_CUDA)
// Only the runtime's device queries; the kernels themselves stay behind kernels/cuda.
#include <cuda_runtime_api.h>
#endif

#include <fstream>
#include <thread>

namespace loom::exec::profile {
namespace {

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t\n") + 1);
  return s;
}

// The value of the first "key : value" line of a /proc file, or "" without one.
std::string proc_value(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0 && line.find(':') != std::string::npos)
      return trim(line.substr(line.find(':') + 1));
  return "";
}

}  // namespace

HostInfo describe_host() {
  HostInfo host;
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  host.host_name = name;
  host.cpu_name = proc_value("/proc/cpuinfo", "model name");
  if (host.cpu_name.empty()) host.cpu_name = "unknown CPU";
  const std::string memory_kib = proc_value("/proc/meminfo", "MemTotal");  // "23000000 kB"
  if (memory_kib.empty())
    throw IoError("cannot read the memory size (MemTotal) from /proc/meminfo");
  host.memory_bytes = std::stoll(memory_kib) * 1024;
  // Not this process's affinity mask: mpirun binds each rank to a core of its own, so a rank
  // sees one core where the node's ranks share them all.
  host.cores = int64_t(std::thread::hardware_concurrency());
  // Open MPI 4 names its shared-memory transport "vader", Open MPI 5 "sm".
  host.eager_limit_bytes = mpi_control_variable("btl_vader_eager_limit");
  if (!host.eager_limit_bytes) host.eager_limit_bytes = mpi_control_variable("btl_sm_eager_limit");
  host.mpi_library = mpi_library_version();
  return host;
}

#if defined(LOOM_HAVE_CUDA)
namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw Error("cannot describe the CUDA device: {} failed: {}", what, cudaGetErrorString(status));
}

// 13000 → "13.0"
std::string cuda_version(int version) { return fmt::format("{}.{}", version / 1000, version % 1000 / 10); }

}  // namespace

GpuInfo describe_cuda_device() {
  int device = 0, devices = 0, runtime = 0, driver = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
  cudaDeviceProp properties{};
  check_cuda(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties");
  check_cuda(cudaRuntimeGetVersion(&runtime), "cudaRuntimeGetVersion");
  check_cuda(cudaDriverGetVersion(&driver), "cudaDriverGetVersion");
  return {properties.name, int64_t(properties.totalGlobalMem),
          fmt::format("CUDA runtime {}, driver {}", cuda_version(runtime), cuda_version(driver)), devices};
}
#else
GpuInfo describe_cuda_device() { throw Error("this build of Loom has no CUDA backend"); }
#endif

}  // namespace loom::exec::profile
