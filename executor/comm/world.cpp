// The world communicator of a backend (world.hpp). The cuda one is chosen in device_world.cpp,
// which only builds with CUDA.

#include "executor/comm/world.hpp"

#include "core/error.hpp"
#include "executor/comm/mpi_communicator.hpp"
#include "executor/comm/mpi_session.hpp"
#ifdef LOOM_HAVE_CUDA
#include "executor/comm/device_world.hpp"
#endif

namespace loom::exec {

std::unique_ptr<Communicator> make_world_communicator(Backend backend) {
  switch (backend) {
    case Backend::cpu:
      return mpi_world();
    case Backend::cuda:
#ifdef LOOM_HAVE_CUDA
      return mpi::make_device_world();
#else
      throw InvalidInput(
          "--backend cuda: this build of Loom has no CUDA backend (it was configured without CUDA, "
          "cuBLASLt or "
          "NCCL; see LOOM_WITH_CUDA); use --backend cpu");
#endif
  }
  throw Error("unknown backend {}", int(backend));
}

int node_local_rank() {
  return mpi::MpiCommunicator(mpi::node_comm()).rank();
}

}  // namespace loom::exec
