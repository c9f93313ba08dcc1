#pragma once
// The world communicator of a backend, and where this rank sits on its node. The commands build
// their communicators here, never from a backend's class, so that none hard-codes a backend.

#include "executor/comm/communicator.hpp"
#include "executor/kernels/backend.hpp"

#include <memory>

namespace loom::exec {

// Every rank of the job, in world order. Collective over the world: every rank calls it, with
// the same backend. MPI must be initialised (MpiSession).
//   cpu:  MPI on host memory (as mpi_world()).
//   cuda: NCCL on device memory when every rank on each node has a GPU of its own; otherwise
//         (ranks sharing a GPU, which NCCL refuses) MPI staged through pinned host memory, with
//         no overlap for the start_… forms. Every rank makes the same choice. Make the kernels
//         first (make_kernels): they select this rank's device, which is what the choice looks
//         at, and create the compute stream the communicator orders its work on.
// A build without the CUDA backend refuses cuda with InvalidInput.
std::unique_ptr<Communicator> make_world_communicator(Backend backend);

// This rank's index among the ranks on its node (0 to their count - 1), in world order: what
// picks its device (make_kernels' device_ordinal). Collective over the world: every rank calls it.
int node_local_rank();

}  // namespace loom::exec
