#pragma once
// The world communicator of Backend::cuda (see make_world_communicator in world.hpp). Only in
// builds with CUDA (device_world.cpp); no CUDA header here.

#include "executor/comm/communicator.hpp"

#include <memory>

namespace loom::exec::mpi {

// NCCL when every rank's current device is its own on its node, else MPI staged through host
// memory. Collective over the world; after the CUDA kernels selected each rank's device.
std::unique_ptr<Communicator> make_device_world();

}  // namespace loom::exec::mpi
