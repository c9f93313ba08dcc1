#pragma once
// The NCCL communicator: collectives and point-to-point on device memory among ranks that each
// have a GPU of their own (NCCL refuses two ranks on one device; those stage through MPI, see
// staged_communicator.hpp). Only in builds with CUDA (LOOM_HAVE_CUDA); no CUDA header here.
//
// Ordering. Blocking calls are queued on the CUDA backend's compute stream: they return at once,
// and the result is there for every later kernel of that stream (Communicator's "blocks" for a
// device backend). start_… calls record an event on the compute stream, make this
// communicator's own communication stream wait for it, queue the collective there and record a
// done-event; PendingCollective::wait() makes the compute stream wait for that event (it does
// not block the host) and test() asks whether it has fired. Every rank queues a communicator's
// operations in one order, and NCCL chains one communicator's kernels on the device in the order
// they were queued, whatever their streams, so they pair up alike on every rank.
//
// Point-to-point. NCCL has no tags: the messages between two ranks match in the order they are
// queued, which is what the tags order on MPI (each pair uses its tags in one order on both
// sides); the tag is not looked at. Each send or receive is its own NCCL group, so a receive
// that pairs with a send queued later on the other rank waits for it on the device, like a
// rendezvous MPI_Send: two ranks that both send first wait for each other. A shorter message
// than the receiver's count is not detected (MPI's is): the counts must agree.
//
// Host memory. all_reduce_sum (doubles in host memory), barrier and idle_barrier go through an
// MPI communicator of the same ranks, held beside the NCCL one and split with it.
//
// Errors. Every NCCL and CUDA call is checked; a failure throws loom::Error naming the operation,
// the count and NCCL's own words. A failed call leaves the ranks out of step (the others went
// into the collective this rank did not), so the NCCL communicator is aborted there and then
// (ncclCommAbort) and every later call on it throws.

#include "executor/comm/communicator.hpp"
#include "executor/comm/mpi_communicator.hpp"

#include <memory>

namespace loom::exec::nccl {

class Channel;  // the ncclComm_t and the communication stream (nccl_communicator.cpp)

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `host`'s ranks, whose MPI order becomes NCCL's: rank 0 makes NCCL's unique
  // id, MPI broadcasts it, every rank joins (ncclCommInitRank) on its current device. The CUDA
  // kernels must exist already: they chose this rank's device and made the compute stream.
  explicit NcclCommunicator(std::unique_ptr<mpi::MpiCommunicator> host);
  ~NcclCommunicator() override;

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  void barrier() override;
  void idle_barrier() override;
  void all_reduce_sum(double* data, size_t count) override;
  // ncclCommSplit, then the MPI split of the held communicator, in that order on every rank.
  std::unique_ptr<Communicator> split(int color, int key) override;

 protected:
  void run_all_reduce(void* data, size_t count, ElementType type, ReduceOp op) override;
  void run_all_gather(const void* send, void* recv, size_t count, ElementType type) override;
  void run_reduce_scatter(const void* send, void* recv, size_t count, ElementType type,
                          ReduceOp op) override;
  void run_broadcast(void* data, size_t count, ElementType type, int root) override;
  void run_send(const void* data, size_t count, ElementType type, int peer, int tag) override;
  void run_recv(void* data, size_t count, ElementType type, int peer, int tag) override;
  // Equal blocks: ncclAllReduce, ncclReduceScatter and ncclAllGather in place. Unequal blocks:
  // one group of ncclReduce (ncclBroadcast) per block, to (from) the rank that owns it.
  std::unique_ptr<PendingCollective> run_start_all_reduce(void* data, size_t count,
                                                          ElementType type, ReduceOp op) override;
  std::unique_ptr<PendingCollective> run_start_reduce_scatter(void* data,
                                                              std::span<const size_t> block_counts,
                                                              ElementType type,
                                                              ReduceOp op) override;
  std::unique_ptr<PendingCollective> run_start_all_gather(void* data,
                                                          std::span<const size_t> block_counts,
                                                          ElementType type) override;

 private:
  NcclCommunicator(std::shared_ptr<Channel> channel, std::unique_ptr<mpi::MpiCommunicator> host);

  // Shared with the PendingCollectives this communicator started, which may outlive it.
  std::shared_ptr<Channel> channel_;
  std::unique_ptr<mpi::MpiCommunicator> host_;
};

}  // namespace loom::exec::nccl
