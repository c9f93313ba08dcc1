// Backend::cuda's world communicator: NCCL where it can run, MPI staged through host memory
// where it cannot. NCCL refuses two ranks on one GPU, so the question is whether any two ranks of
// a node selected the same device. Comparing the devices' PCI bus ids (what NCCL itself compares)
// answers it whatever each rank sees: all the node's GPUs, or one each (CUDA_VISIBLE_DEVICES).

#include "executor/comm/device_world.hpp"

#include "core/error.hpp"
#include "executor/comm/cuda_support.hpp"
#include "executor/comm/mpi_communicator.hpp"
#include "executor/comm/nccl_communicator.hpp"
#include "executor/comm/staged_communicator.hpp"

#include <cuda_runtime.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

namespace loom::exec::mpi {
namespace {

// "0000:3b:00.0" and room to spare; NCCL keeps 16 bytes for it.
constexpr int kBusIdLength = 32;

// This rank's say: 1 when its device is its own on its node, 0 when another rank of the node
// selected it too, -1 when it could not tell (`failure` says why). A rank that cannot tell still
// takes part in the collectives below, so that no rank is left waiting in them.
int vote_for_nccl(std::string* failure) {
  std::array<char, kBusIdLength> own{};
  int device = -1;
  cudaError_t result = cudaGetDevice(&device);
  if (result == cudaSuccess) result = cudaDeviceGetPCIBusId(own.data(), kBusIdLength, device);
  if (result != cudaSuccess)
    *failure = cuda::cuda_failure(result, "cudaGetDevice / cudaDeviceGetPCIBusId");

  MpiCommunicator node(node_comm());
  std::vector<char> all(size_t(node.size()) * kBusIdLength);
  check(MPI_Allgather(own.data(), kBusIdLength, MPI_CHAR, all.data(), kBusIdLength, MPI_CHAR,
                      node.handle()),
        "the node's devices (MPI_Allgather)");
  if (!failure->empty()) return -1;
  for (int q = 0; q < node.size(); ++q)
    if (q != node.rank() &&
        std::memcmp(&all[size_t(q) * kBusIdLength], own.data(), kBusIdLength) == 0)
      return 0;
  return 1;
}

}  // namespace

std::unique_ptr<Communicator> make_device_world() {
  cuda::compute_stream_for("--backend cuda");  // the kernels exist: each rank's device is selected
  std::string failure;
  const int vote = vote_for_nccl(&failure);
  auto world = std::make_unique<MpiCommunicator>(Comm::world());
  // The least vote decides, so that every rank makes the same choice.
  int decision = vote;
  check(MPI_Allreduce(&vote, &decision, 1, MPI_INT, MPI_MIN, world->handle()),
        "the choice of communicator (MPI_Allreduce)");
  if (decision < 0)
    throw Error("--backend cuda: {}",
                failure.empty() ? "another rank could not query its CUDA device" : failure);
  if (decision == 1) return std::make_unique<nccl::NcclCommunicator>(std::move(world));
  return std::make_unique<StagedCommunicator>(std::move(world));
}

}  // namespace loom::exec::mpi
