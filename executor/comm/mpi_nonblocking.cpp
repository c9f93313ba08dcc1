// The MPI communicator's non-blocking collectives: MPI_Iallreduce, MPI_Ireduce_scatter and
// MPI_Iallgatherv in place, or, for buffers above max_count elements (MPI counts are int),
// several requests in chunks. A PendingCollective holds the requests, the count arrays MPI reads
// until completion, the fp32 copy a bf16 reduction runs on, and what is left to do once they
// complete (averaging; moving an in-place reduce-scatter's result, which MPI leaves at the start
// of the buffer, to this rank's block; rounding a bf16 result back from its fp32 copy).

#include "executor/comm/mpi_communicator.hpp"

#include "core/error.hpp"
#include "executor/comm/mpi_elements.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

namespace loom::exec::mpi {
namespace {

class MpiPendingCollective final : public PendingCollective {
 public:
  explicit MpiPendingCollective(std::string operation) : operation_(std::move(operation)) {}
  ~MpiPendingCollective() override {
    if (done_) return;
    try {
      wait();
    } catch (...) {  // nothing to report to from a destructor; the buffer is no longer MPI's
    }
  }

  std::vector<MPI_Request> requests;
  // MPI reads a non-blocking collective's count and displacement arrays until it completes.
  std::vector<int> counts, displacements;
  // MPI has no bfloat16: a bf16 reduction runs on this fp32 copy, rounded back by `finish`.
  std::vector<float> wide;
  std::function<void()> finish;  // after every request is complete

  bool test() override {
    if (done_) return true;
    int complete = 0;
    check(MPI_Testall(int(requests.size()), requests.data(), &complete, MPI_STATUSES_IGNORE), operation_);
    if (complete) finish_once();
    return done_;
  }

  void wait() override {
    if (done_) return;
    check(MPI_Waitall(int(requests.size()), requests.data(), MPI_STATUSES_IGNORE), operation_);
    finish_once();
  }

 private:
  void finish_once() {
    done_ = true;
    if (finish) finish();
  }

  std::string operation_;
  bool done_ = false;
};

size_t offset_of_block(std::span<const size_t> block_counts, int rank) {
  return std::accumulate(block_counts.begin(), block_counts.begin() + rank, size_t(0));
}

}  // namespace

std::unique_ptr<PendingCollective> MpiCommunicator::run_start_all_reduce(void* data, size_t count, ElementType type,
                                                                         ReduceOp op) {
  auto pending = std::make_unique<MpiPendingCollective>("start_all_reduce (MPI_Iallreduce)");
  // What MPI reduces: the buffer itself, or for bf16 its fp32 copy.
  void* buffer = data;
  ElementType reduced = type;
  if (type == ElementType::bf16) {
    pending->wide = widen_bf16(data, count);
    buffer = pending->wide.data();
    reduced = ElementType::f32;
  }
  for (size_t offset = 0; offset < count; offset += max_count_) {
    MPI_Request& request = pending->requests.emplace_back(MPI_REQUEST_NULL);
    const int n = int(std::min(max_count_, count - offset));
    check(MPI_Iallreduce(MPI_IN_PLACE, element_at(buffer, offset, reduced), n, carrier(reduced), reduction(op),
                         handle(), &request),
          "start_all_reduce (MPI_Iallreduce)");
  }
  pending->finish = [=, average = op == ReduceOp::average, size = size_] {
    if (average) divide_by_ranks(buffer, count, reduced, size);
    if (type == ElementType::bf16) narrow_to_bf16(static_cast<const float*>(buffer), count, data);
  };
  return pending;
}

std::unique_ptr<PendingCollective> MpiCommunicator::run_start_reduce_scatter(void* data,
                                                                             std::span<const size_t> block_counts,
                                                                             ElementType type, ReduceOp op) {
  const size_t total = std::accumulate(block_counts.begin(), block_counts.end(), size_t(0));
  const size_t own_offset = offset_of_block(block_counts, rank_);
  const size_t own_count = block_counts[size_t(rank_)];
  auto pending = std::make_unique<MpiPendingCollective>("start_reduce_scatter (MPI_Ireduce_scatter)");
  // What MPI reduces: the buffer itself, or for bf16 its fp32 copy.
  void* buffer = data;
  ElementType reduced = type;
  if (type == ElementType::bf16) {
    pending->wide = widen_bf16(data, total);
    buffer = pending->wide.data();
    reduced = ElementType::f32;
  }
  void* own_block = element_at(buffer, own_offset, reduced);
  // In place, MPI leaves this rank's result at the start of the buffer (it may overlap the own
  // block when blocks differ in size: memmove). The chunked path reduces straight into it.
  bool result_at_start = false;
  if (total <= max_count_) {
    pending->counts.assign(block_counts.begin(), block_counts.end());
    MPI_Request& request = pending->requests.emplace_back(MPI_REQUEST_NULL);
    check(MPI_Ireduce_scatter(MPI_IN_PLACE, buffer, pending->counts.data(), carrier(reduced), reduction(op), handle(),
                              &request),
          "start_reduce_scatter (MPI_Ireduce_scatter)");
    result_at_start = true;
  } else {
    // Too large for int counts: a chunked reduction to each block's owner, straight into its
    // block (the owner's in-place form).
    size_t block_offset = 0;
    for (int root = 0; root < size_; ++root) {
      const size_t block_count = block_counts[size_t(root)];
      for (size_t offset = 0; offset < block_count; offset += max_count_) {
        void* chunk = element_at(buffer, block_offset + offset, reduced);
        const int n = int(std::min(max_count_, block_count - offset));
        MPI_Request& request = pending->requests.emplace_back(MPI_REQUEST_NULL);
        check(MPI_Ireduce(root == rank_ ? MPI_IN_PLACE : chunk, root == rank_ ? chunk : nullptr, n, carrier(reduced),
                          reduction(op), root, handle(), &request),
              "start_reduce_scatter (MPI_Ireduce)");
      }
      block_offset += block_count;
    }
  }
  pending->finish = [=, average = op == ReduceOp::average, size = size_] {
    if (result_at_start && own_block != buffer && own_count > 0)
      std::memmove(own_block, buffer, own_count * element_size(reduced));
    if (average) divide_by_ranks(own_block, own_count, reduced, size);
    if (type == ElementType::bf16)
      narrow_to_bf16(static_cast<const float*>(own_block), own_count, element_at(data, own_offset, type));
  };
  return pending;
}

std::unique_ptr<PendingCollective> MpiCommunicator::run_start_all_gather(void* data,
                                                                         std::span<const size_t> block_counts,
                                                                         ElementType type) {
  const size_t total = std::accumulate(block_counts.begin(), block_counts.end(), size_t(0));
  auto pending = std::make_unique<MpiPendingCollective>("start_all_gather (MPI_Iallgatherv)");
  if (total <= max_count_) {
    pending->counts.assign(block_counts.begin(), block_counts.end());
    pending->displacements.resize(block_counts.size());
    std::exclusive_scan(pending->counts.begin(), pending->counts.end(), pending->displacements.begin(), 0);
    MPI_Request& request = pending->requests.emplace_back(MPI_REQUEST_NULL);
    // In place: this rank's block is read from its place in `data`.
    check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, pending->counts.data(),
                          pending->displacements.data(), carrier(type), handle(), &request),
          "start_all_gather (MPI_Iallgatherv)");
    return pending;
  }
  // Too large for int counts: each rank broadcasts its block, in chunks.
  size_t block_offset = 0;
  for (int root = 0; root < size_; ++root) {
    const size_t block_count = block_counts[size_t(root)];
    for (size_t offset = 0; offset < block_count; offset += max_count_) {
      MPI_Request& request = pending->requests.emplace_back(MPI_REQUEST_NULL);
      check(MPI_Ibcast(element_at(data, block_offset + offset, type), int(std::min(max_count_, block_count - offset)),
                       carrier(type), root, handle(), &request),
            "start_all_gather (MPI_Ibcast)");
    }
    block_offset += block_count;
  }
  return pending;
}

}  // namespace loom::exec::mpi
