// MPI on device memory through pinned host copies (staged_communicator.hpp).

#include "executor/comm/staged_communicator.hpp"

#include "core/error.hpp"
#include "executor/comm/completed_collective.hpp"
#include "executor/comm/cuda_support.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <numeric>

namespace loom::exec::mpi {

StagedCommunicator::StagedCommunicator(std::unique_ptr<MpiCommunicator> host)
    : host_(std::move(host)) {
  if (!host_) throw Error("staged communicator: no MPI communicator to stage through");
}

StagedCommunicator::~StagedCommunicator() {
  if (pinned_ != nullptr) cudaFreeHost(pinned_);  // a destructor cannot report an error
}

std::unique_ptr<Communicator> StagedCommunicator::split(int color, int key) {
  std::unique_ptr<MpiCommunicator> group = host_->split_mpi(color, key);
  if (!group) return nullptr;
  return std::make_unique<StagedCommunicator>(std::move(group));
}

std::byte* StagedCommunicator::staging(size_t bytes) {
  if (bytes <= pinned_bytes_) return pinned_;
  // Doubling: a run's first steps meet its largest buffers, and pinning is slow (it maps pages).
  const size_t grown = std::max(bytes, 2 * pinned_bytes_);
  if (pinned_ != nullptr)
    cuda::check_cuda(cudaFreeHost(pinned_), "cudaFreeHost (staged communicator)");
  pinned_ = nullptr;
  pinned_bytes_ = 0;
  void* fresh = nullptr;
  cuda::check_cuda(cudaMallocHost(&fresh, grown),
                   fmt::format("cudaMallocHost of {} bytes (staged communicator)", grown));
  pinned_ = static_cast<std::byte*>(fresh);
  pinned_bytes_ = grown;
  return pinned_;
}

void StagedCommunicator::to_host(const void* device, void* host, size_t bytes) {
  const cudaStream_t stream = cuda::compute_stream_for("staged communicator");
  cuda::check_cuda(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream),
                   "cudaMemcpyAsync to the host (staged communicator)");
  cuda::check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (staged communicator)");
}

void StagedCommunicator::to_device(const void* host, void* device, size_t bytes) {
  const cudaStream_t stream = cuda::compute_stream_for("staged communicator");
  cuda::check_cuda(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream),
                   "cudaMemcpyAsync to the device (staged communicator)");
  // The next call reuses the pinned buffer (an MPI receive writes it before any copy would wait).
  cuda::check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (staged communicator)");
}

void StagedCommunicator::run_all_reduce(void* data, size_t count, ElementType type, ReduceOp op) {
  if (count == 0) return;
  const size_t bytes = count * element_size(type);
  std::byte* host = staging(bytes);
  to_host(data, host, bytes);
  host_->all_reduce(host, count, type, op);
  to_device(host, data, bytes);
}

void StagedCommunicator::run_all_gather(const void* send, void* recv, size_t count,
                                        ElementType type) {
  if (count == 0) return;
  const size_t block = count * element_size(type);
  std::byte* host = staging(block * size_t(size()));
  std::byte* own = host + size_t(rank()) * block;
  to_host(send, own, block);
  host_->all_gather(own, host, count, type);  // MPI's in-place form: the block sits in its slot
  to_device(host, recv, block * size_t(size()));
}

void StagedCommunicator::run_reduce_scatter(const void* send, void* recv, size_t count,
                                            ElementType type, ReduceOp op) {
  if (count == 0) return;
  const size_t block = count * element_size(type);
  std::byte* host = staging(block * size_t(size()));
  std::byte* own = host + size_t(rank()) * block;
  to_host(send, host, block * size_t(size()));
  host_->reduce_scatter(host, own, count, type, op);  // in place, into this rank's block
  to_device(own, recv, block);
}

void StagedCommunicator::run_broadcast(void* data, size_t count, ElementType type, int root) {
  if (count == 0) return;
  const size_t bytes = count * element_size(type);
  std::byte* host = staging(bytes);
  if (rank() == root) to_host(data, host, bytes);
  host_->broadcast(host, count, type, root);
  if (rank() != root) to_device(host, data, bytes);
}

void StagedCommunicator::run_send(const void* data, size_t count, ElementType type, int peer,
                                  int tag) {
  if (count == 0) return;
  const size_t bytes = count * element_size(type);
  std::byte* host = staging(bytes);
  to_host(data, host, bytes);
  host_->send(host, count, type, peer, tag);
}

void StagedCommunicator::run_recv(void* data, size_t count, ElementType type, int peer, int tag) {
  if (count == 0) return;
  const size_t bytes = count * element_size(type);
  std::byte* host = staging(bytes);
  host_->recv(host, count, type, peer, tag);
  to_device(host, data, bytes);
}

std::unique_ptr<PendingCollective> StagedCommunicator::run_start_all_reduce(void* data,
                                                                            size_t count,
                                                                            ElementType type,
                                                                            ReduceOp op) {
  run_all_reduce(data, count, type, op);
  return std::make_unique<CompletedCollective>();
}

std::unique_ptr<PendingCollective> StagedCommunicator::run_start_reduce_scatter(
    void* data, std::span<const size_t> block_counts, ElementType type, ReduceOp op) {
  const size_t total = std::accumulate(block_counts.begin(), block_counts.end(), size_t(0));
  if (total > 0) {
    const size_t bytes = element_size(type);
    const size_t own_offset =
        std::accumulate(block_counts.begin(), block_counts.begin() + rank(), size_t(0));
    std::byte* host = staging(total * bytes);
    to_host(data, host, total * bytes);
    host_->start_reduce_scatter(host, block_counts, type, op)->wait();
    // Only this rank's block holds a result; the contract leaves the rest undefined.
    to_device(host + own_offset * bytes, static_cast<std::byte*>(data) + own_offset * bytes,
              block_counts[size_t(rank())] * bytes);
  }
  return std::make_unique<CompletedCollective>();
}

std::unique_ptr<PendingCollective> StagedCommunicator::run_start_all_gather(
    void* data, std::span<const size_t> block_counts, ElementType type) {
  const size_t total = std::accumulate(block_counts.begin(), block_counts.end(), size_t(0));
  if (total > 0) {
    const size_t bytes = element_size(type);
    const size_t own_offset =
        std::accumulate(block_counts.begin(), block_counts.begin() + rank(), size_t(0));
    std::byte* host = staging(total * bytes);
    // Only this rank's own block is read: the gather fills in the others.
    to_host(static_cast<const std::byte*>(data) + own_offset * bytes, host + own_offset * bytes,
            block_counts[size_t(rank())] * bytes);
    host_->start_all_gather(host, block_counts, type)->wait();
    to_device(host, data, total * bytes);
  }
  return std::make_unique<CompletedCollective>();
}

}  // namespace loom::exec::mpi
