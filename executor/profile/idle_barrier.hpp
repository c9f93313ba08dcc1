#pragma once
// A barrier for ranks with nothing to do while others measure. Open MPI's blocking calls
// busy-poll: on a machine with fewer cores than ranks, a rank spinning in MPI_Barrier would take
// the measuring rank's core and slow what it measures.

#include "executor/comm/mpi_communicator.hpp"

namespace loom::exec::profile {

// MPI_Ibarrier, then MPI_Test between sleeps of 10 ms until every rank has arrived.
void barrier_without_spinning(const mpi::MpiCommunicator& world);

}  // namespace loom::exec::profile
