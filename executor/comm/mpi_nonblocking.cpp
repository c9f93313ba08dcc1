// The MPI communicator's non-blocking collectives: MPI_Iallreduce, MPI_Ireduce_scatter and
// MPI_Iallgatherv in place, or, for buffers above max_count elements (MPI counts are int),
// several requests in chunks. A PendingCollective holds the requests, the count arrays MPI reads
// until completion, and what is left to do once they complete (averaging; moving an in-place
// reduce-scatter's result, which MPI leaves at the start of the buffer, to this rank's block).

#include "executor/comm/mpi_communicator.hpp"

#include "core/error.hpp"

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

void divide_by_ranks(float* data, size_t count, int size) {
  // As the blocking collectives: divided, not multiplied by a rounded 1/size.
  const float n = static_cast<float>(size);
  for (size_t i = 0; i < count; ++i) data[i] /= n;
}

size_t offset_of_block(std::span<const size_t> block_counts, int rank) {
  return std::accumulate(block_counts.begin(), block_counts.begin() + rank, size_t(0));
}

void require_one_block_per_rank(std::span<const size_t> block_counts, int size, std::string_view operation) {
  if (block_counts.size() != size_t(size))
    throw Error("{}: {} block counts for a communicator of {} ranks", operation, block_counts.size(), size);
}

}  // namespace

std::unique_ptr<PendingCollective> MpiCommunicator::start_all_reduce(float* data, size_t count, ReduceOp op) {
  auto pending = std::make_unique<MpiPendingCollective>("start_all_reduce (MPI_Iallreduce)");
  for (size_t offset = 0; offset < count; offset += max_count_) {
    MPI_Request& request = pending->requests.emplace_back(MPI_REQUEST_NULL);
    const int n = int(std::min(max_count_, count - offset));
    check(MPI_Iallreduce(MPI_IN_PLACE, data + offset, n, MPI_FLOAT, MPI_SUM, handle(), &request),
          "start_all_reduce (MPI_Iallreduce)");
  }
  if (op == ReduceOp::average) pending->finish = [data, count, size = size_] { divide_by_ranks(data, count, size); };
  return pending;
}

std::unique_ptr<PendingCollective> MpiCommunicator::start_reduce_scatter(float* data,
                                                                         std::span<const size_t> block_counts,
                                                                         ReduceOp op) {
  require_one_block_per_rank(block_counts, size_, "start_reduce_scatter");
  const size_t total = std::accumulate(block_counts.begin(), block_counts.end(), size_t(0));
  float* own_block = data + offset_of_block(block_counts, rank_);
  const size_t own_count = block_counts[size_t(rank_)];
  auto pending = std::make_unique<MpiPendingCollective>("start_reduce_scatter (MPI_Ireduce_scatter)");
  std::function<void()> move_to_own_block;
  if (total <= max_count_) {
    pending->counts.assign(block_counts.begin(), block_counts.end());
    MPI_Request& request = pending->requests.emplace_back(MPI_REQUEST_NULL);
    check(MPI_Ireduce_scatter(MPI_IN_PLACE, data, pending->counts.data(), MPI_FLOAT, MPI_SUM, handle(), &request),
          "start_reduce_scatter (MPI_Ireduce_scatter)");
    // In place, MPI leaves this rank's result at the start of the buffer (it may overlap the
    // own block when blocks differ in size: memmove).
    if (own_block != data && own_count > 0)
      move_to_own_block = [data, own_block, own_count] { std::memmove(own_block, data, own_count * sizeof(float)); };
  } else {
    // Too large for int counts: a chunked reduction to each block's owner, straight into its
    // block (the owner's in-place form).
    size_t block_offset = 0;
    for (int root = 0; root < size_; ++root) {
      const size_t block_count = block_counts[size_t(root)];
      for (size_t offset = 0; offset < block_count; offset += max_count_) {
        float* chunk = data + block_offset + offset;
        const int n = int(std::min(max_count_, block_count - offset));
        MPI_Request& request = pending->requests.emplace_back(MPI_REQUEST_NULL);
        check(MPI_Ireduce(root == rank_ ? MPI_IN_PLACE : chunk, root == rank_ ? chunk : nullptr, n, MPI_FLOAT,
                          MPI_SUM, root, handle(), &request),
              "start_reduce_scatter (MPI_Ireduce)");
      }
      block_offset += block_count;
    }
  }
  pending->finish = [move_to_own_block, own_block, own_count, average = op == ReduceOp::average, size = size_] {
    if (move_to_own_block) move_to_own_block();
    if (average) divide_by_ranks(own_block, own_count, size);
  };
  return pending;
}

std::unique_ptr<PendingCollective> MpiCommunicator::start_all_gather(float* data, std::span<const size_t> block_counts) {
  require_one_block_per_rank(block_counts, size_, "start_all_gather");
  const size_t total = std::accumulate(block_counts.begin(), block_counts.end(), size_t(0));
  auto pending = std::make_unique<MpiPendingCollective>("start_all_gather (MPI_Iallgatherv)");
  if (total <= max_count_) {
    pending->counts.assign(block_counts.begin(), block_counts.end());
    pending->displacements.resize(block_counts.size());
    std::exclusive_scan(pending->counts.begin(), pending->counts.end(), pending->displacements.begin(), 0);
    MPI_Request& request = pending->requests.emplace_back(MPI_REQUEST_NULL);
    // In place: this rank's block is read from its place in `data`.
    check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, pending->counts.data(),
                          pending->displacements.data(), MPI_FLOAT, handle(), &request),
          "start_all_gather (MPI_Iallgatherv)");
    return pending;
  }
  // Too large for int counts: each rank broadcasts its block, in chunks.
  size_t block_offset = 0;
  for (int root = 0; root < size_; ++root) {
    const size_t block_count = block_counts[size_t(root)];
    for (size_t offset = 0; offset < block_count; offset += max_count_) {
      MPI_Request& request = pending->requests.emplace_back(MPI_REQUEST_NULL);
      check(MPI_Ibcast(data + block_offset + offset, int(std::min(max_count_, block_count - offset)), MPI_FLOAT, root,
                       handle(), &request),
            "start_all_gather (MPI_Ibcast)");
    }
    block_offset += block_count;
  }
  return pending;
}

}  // namespace loom::exec::mpi
