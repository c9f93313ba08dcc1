#include "executor/profile/host.hpp"

#include "core/error.hpp"
#include "executor/comm/mpi_communicator.hpp"  // MPI_Get_library_version

#include <unistd.h>

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

// An integer control variable of the MPI library by name, through the MPI tool interface.
std::optional<int64_t> mpi_control_variable(const std::string& wanted) {
  int provided = 0;
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return std::nullopt;
  std::optional<int64_t> value;
  int count = 0;
  MPI_T_cvar_get_num(&count);
  for (int i = 0; i < count && !value; ++i) {
    char name[256] = {}, description[16] = {};
    int name_length = sizeof(name), description_length = sizeof(description), verbosity = 0, binding = 0, scope = 0;
    MPI_Datatype type;
    MPI_T_enum enumtype;
    if (MPI_T_cvar_get_info(i, name, &name_length, &verbosity, &type, &enumtype, description, &description_length,
                            &binding, &scope) != MPI_SUCCESS || wanted != name || binding != MPI_T_BIND_NO_OBJECT)
      continue;
    MPI_T_cvar_handle handle;
    int elements = 0;
    if (MPI_T_cvar_handle_alloc(i, nullptr, &handle, &elements) != MPI_SUCCESS) continue;
    if (type == MPI_INT || type == MPI_UNSIGNED) {
      int v = 0;
      if (MPI_T_cvar_read(handle, &v) == MPI_SUCCESS) value = v;
    } else if (type == MPI_UNSIGNED_LONG || type == MPI_LONG || type == MPI_UNSIGNED_LONG_LONG || type == MPI_LONG_LONG) {
      long long v = 0;
      if (MPI_T_cvar_read(handle, &v) == MPI_SUCCESS) value = v;
    }
    MPI_T_cvar_handle_free(&handle);
  }
  MPI_T_finalize();
  return value;
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
  char library[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(library, &length);
  const std::string text(library, size_t(length));
  host.mpi_library = trim(text.substr(0, text.find_first_of(",\n")));
  return host;
}

}  // namespace loom::exec::profile
