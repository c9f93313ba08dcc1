// MPI as a process: initialisation, the world and this node's part of it, abort, and the library's
// own description.
#include "executor/comm/mpi_session.hpp"

#include "core/error.hpp"
#include "executor/comm/mpi_communicator.hpp"

#include <cstdlib>  // std::_Exit
#include <string>

namespace loom::exec {

mpi::Comm mpi::node_comm() {
  MPI_Comm node = MPI_COMM_NULL;
  // Key 0 for every rank: ties keep the world order.
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type (the ranks of this node)");
  return Comm(node);
}

std::unique_ptr<Communicator> mpi_world() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) throw Error("MPI is not initialised: create an MpiSession first");
  return std::make_unique<mpi::MpiCommunicator>(mpi::Comm::world());
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  // MPI can be initialised once per process; a second session would finalise it under the first.
  if (initialized) throw Error("MPI is already initialised: a process holds one MpiSession");
  // FUNNELED: kernels may run threads, but only the main thread calls MPI.
  int provided = MPI_THREAD_SINGLE;
  mpi::check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_FUNNELED) {
    MPI_Finalize();  // the destructor will not run after a throwing constructor
    throw Error("MPI provides thread level {} but Loom needs MPI_THREAD_FUNNELED ({})", provided,
                int(MPI_THREAD_FUNNELED));
  }
}

MpiSession::~MpiSession() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

int MpiSession::world_rank() const {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int MpiSession::world_size() const {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

void MpiSession::abort_job(int exit_code) const {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  // MPI_Abort does not return on Open MPI or MPICH; the standard only says it "makes a best
  // attempt", so the process ends here either way.
  std::_Exit(exit_code);
}

std::string mpi_library_version() {
  char library[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(library, &length);
  std::string text(library, size_t(length));
  text = text.substr(0, text.find_first_of(",\n"));
  text.erase(0, text.find_first_not_of(" \t"));
  text.erase(text.find_last_not_of(" \t") + 1);
  return text;
}

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

}  // namespace loom::exec
