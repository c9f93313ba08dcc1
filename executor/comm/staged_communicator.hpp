#pragma once
// MPI for device memory, through pinned host buffers: the communicator of ranks that share a GPU
// (NCCL refuses two ranks on one device). Each call copies the device buffer to host memory on
// the compute stream, waits for the copy, runs the MPI operation on the host copy and copies the
// result back, waiting again so that the next call may reuse the host buffer. So every call
// blocks the host, and is ordered after all the work queued on the compute stream before it.
// Only in builds with CUDA (LOOM_HAVE_CUDA); no CUDA header here.
//
// No overlap on this path: the start_… forms run their collective to completion before they
// return, and hand back a PendingCollective that is already complete.

#include "executor/comm/communicator.hpp"
#include "executor/comm/mpi_communicator.hpp"

#include <cstddef>
#include <memory>

namespace loom::exec::mpi {

class StagedCommunicator final : public Communicator {
 public:
  explicit StagedCommunicator(std::unique_ptr<MpiCommunicator> host);
  ~StagedCommunicator() override;
  StagedCommunicator(const StagedCommunicator&) = delete;
  StagedCommunicator& operator=(const StagedCommunicator&) = delete;

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  void barrier() override { host_->barrier(); }
  void idle_barrier() override { host_->idle_barrier(); }
  void all_reduce_sum(double* data, size_t count) override { host_->all_reduce_sum(data, count); }
  std::unique_ptr<Communicator> split(int color, int key) override;

 protected:
  void run_all_reduce(void* data, size_t count, ElementType type, ReduceOp op) override;
  void run_all_gather(const void* send, void* recv, size_t count, ElementType type) override;
  void run_reduce_scatter(const void* send, void* recv, size_t count, ElementType type,
                          ReduceOp op) override;
  void run_broadcast(void* data, size_t count, ElementType type, int root) override;
  void run_send(const void* data, size_t count, ElementType type, int peer, int tag) override;
  void run_recv(void* data, size_t count, ElementType type, int peer, int tag) override;
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
  // The pinned host buffer, at least `bytes` long (grown, never shrunk: calls repeat their sizes).
  std::byte* staging(size_t bytes);
  // Copies on the compute stream and waits for them.
  void to_host(const void* device, void* host, size_t bytes);
  void to_device(const void* host, void* device, size_t bytes);

  std::unique_ptr<MpiCommunicator> host_;
  std::byte* pinned_ = nullptr;
  size_t pinned_bytes_ = 0;
};

}  // namespace loom::exec::mpi
