#pragma once
// The MPI process: its initialisation, its world communicator, its abort, and what the MPI
// library says about itself. Everything outside executor/comm that needs MPI goes through here
// or through Communicator; <mpi.h> is included only inside comm/.

#include "executor/comm/communicator.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace loom::exec {

// Initialises MPI on construction (thread level FUNNELED), finalises on destruction.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int world_rank() const;
  int world_size() const;
  // Ends every rank of the job with `exit_code` (MPI_Abort on the world): a rank that fails alone
  // would leave the others waiting in a collective.
  [[noreturn]] void abort_job(int exit_code) const;
};

// MPI_COMM_WORLD wrapped (MPI must be initialised; see MpiSession).
std::unique_ptr<Communicator> mpi_world();

// The first line of MPI_Get_library_version ("Open MPI v4.1.4").
std::string mpi_library_version();

// An integer control variable of the MPI library by name (e.g. "btl_vader_eager_limit"),
// through the MPI tool interface; nullopt when the library has no such variable.
std::optional<int64_t> mpi_control_variable(const std::string& name);

}  // namespace loom::exec
