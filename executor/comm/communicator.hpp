#pragma once
// Collective and point-to-point communication among a group of ranks, behind one interface with
// an MPI implementation (CPU) and an NCCL one (GPU). Buffers are fp32 host or device memory as
// the backend expects; counts are in elements. Every call blocks until this rank's part is done,
// except the start_… forms, which return a PendingCollective (Megatron-Core's overlapped
// gradient reduce and parameter gather run their buckets that way, beside the compute).

#include "core/rank_layout.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace loom::exec {

enum class ReduceOp : uint8_t { sum, average };

// A collective started by one of Communicator's start_… calls. Until it is complete its buffer
// belongs to it: nobody else reads or writes it.
class PendingCollective {
 public:
  // One dropped before wait() is completed here, so that the backend never writes into a buffer
  // freed after it (a destructor cannot report errors; they are lost).
  virtual ~PendingCollective() = default;
  // Lets the collective advance without blocking (MPI progresses non-blocking collectives only
  // inside MPI calls) and says whether it is complete; test() returning true completes it.
  virtual bool test() = 0;
  // Blocks until this rank's part is done and the result is in the buffer. Later calls return.
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: data ← reduce over ranks of data.
  virtual void all_reduce(float* data, size_t count, ReduceOp op) = 0;
  // recv [size · count] ← every rank's send [count], in rank order.
  virtual void all_gather(const float* send, float* recv, size_t count) = 0;
  // recv [count] ← this rank's block of the reduction of every rank's send [size · count]. recv
  // may be this rank's own block of send (in place).
  virtual void reduce_scatter(const float* send, float* recv, size_t count, ReduceOp op) = 0;
  virtual void broadcast(float* data, size_t count, int root) = 0;
  // Blocking point-to-point with a tag; peers are ranks of this communicator.
  virtual void send(const float* data, size_t count, int peer, int tag) = 0;
  virtual void recv(float* data, size_t count, int peer, int tag) = 0;
  virtual void barrier() = 0;
  // A barrier for ranks with nothing to do while others measure: it must not take a core from
  // the rank that measures (Open MPI's blocking calls busy-poll). A backend whose barrier does
  // not spin may use barrier().
  virtual void idle_barrier() = 0;
  // A double-precision sum over ranks (losses, gradient norms), in place.
  virtual void all_reduce_sum(double* data, size_t count) = 0;

  // Non-blocking collectives, all in place. Every rank starts the non-blocking collectives of a
  // communicator in one order (as blocking ones); they may be waited for in any order, and
  // blocking calls may run while they are pending.
  // As all_reduce.
  virtual std::unique_ptr<PendingCollective> start_all_reduce(float* data, size_t count, ReduceOp op) = 0;
  // `data` holds Σ block_counts elements (one count per rank), rank r's block right after those
  // of ranks below r. Rank r's block ← its block of the reduction over ranks of `data`; the rest
  // of `data` is left undefined. Blocks may differ in size (ZeRO-1's shards cut by a bucket).
  virtual std::unique_ptr<PendingCollective> start_reduce_scatter(float* data, std::span<const size_t> block_counts,
                                                                  ReduceOp op) = 0;
  // Blocks as start_reduce_scatter: every rank's `data` ← every rank's own block of it.
  virtual std::unique_ptr<PendingCollective> start_all_gather(float* data, std::span<const size_t> block_counts) = 0;

  // Ranks with equal `color` form a new communicator, ordered by `key`. Collective over this one:
  // every rank calls it; a rank passing color < 0 joins no group and gets null.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
};

// The process groups of a rank in the Megatron layout (tp fastest, then dp, then pp), created in a
// fixed order on every rank: tensor, data, pipeline, embedding. `embedding` is null on ranks that
// are neither first nor last pipeline stage, and when pp == 1.
struct ProcessGroups {
  core::RankLayout layout;
  core::RankCoords coords;
  std::unique_ptr<Communicator> tensor;
  std::unique_ptr<Communicator> data;
  std::unique_ptr<Communicator> pipeline;  // rank within it = pipeline stage
  std::unique_ptr<Communicator> embedding;
};

// `world` must have layout.world_size() ranks; its rank order is the global rank.
ProcessGroups make_process_groups(Communicator& world, const core::RankLayout& layout);

}  // namespace loom::exec
