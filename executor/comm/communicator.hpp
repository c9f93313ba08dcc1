#pragma once
// Collective and point-to-point communication among a group of ranks, behind one interface with
// an MPI implementation (CPU, and GPUs shared by several ranks through host staging) and an NCCL
// one (one GPU per rank). Counts are in elements. Every call blocks (below), except the start_…
// forms, which return a PendingCollective (Megatron-Core's overlapped gradient reduce and
// parameter gather run their buckets that way, beside the compute).

#include "core/rank_layout.hpp"
#include "executor/tensor.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace loom::exec {

// max is for the vocab-parallel cross-entropy's row maxima (and any other "largest over ranks").
enum class ReduceOp : uint8_t { sum, average, max };

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
  // Blocks until this rank's part is done and the result is in the buffer (for a device backend:
  // until later work on the compute stream sees it). Later calls return.
  virtual void wait() = 0;
};

// The element types a communicator carries: f32 and bf16 (activations, gradients), f64 (losses,
// norms), i32 (counts, tokens). Buffers live where the backend expects them (host memory for MPI,
// device memory for NCCL), except all_reduce_sum's, which is always host memory.
//
// The public functions are a non-virtual front (typed, plus fp32 shorthands) that checks what
// every backend needs (element types a reduction can take, peers within the group) and calls the
// backend's run_… function. "Blocks" means: for a host backend, the call returns when this rank's
// part is done; for a device backend, the result is ordered before every later kernel of the
// compute stream (a host read still needs Kernels::synchronize()).
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: data ← reduce over ranks of data.
  void all_reduce(void* data, size_t count, ElementType type, ReduceOp op);
  // recv [size · count] ← every rank's send [count], in rank order.
  void all_gather(const void* send, void* recv, size_t count, ElementType type);
  // recv [count] ← this rank's block of the reduction of every rank's send [size · count]. recv
  // may be this rank's own block of send (in place).
  void reduce_scatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op);
  void broadcast(void* data, size_t count, ElementType type, int root);
  // Blocking point-to-point with a tag; peers are ranks of this communicator.
  void send(const void* data, size_t count, ElementType type, int peer, int tag);
  void recv(void* data, size_t count, ElementType type, int peer, int tag);

  // fp32 shorthands of the above.
  void all_reduce(float* data, size_t count, ReduceOp op) { all_reduce(data, count, ElementType::f32, op); }
  void all_gather(const float* send, float* recv, size_t count) { all_gather(send, recv, count, ElementType::f32); }
  void reduce_scatter(const float* send, float* recv, size_t count, ReduceOp op) {
    reduce_scatter(send, recv, count, ElementType::f32, op);
  }
  void broadcast(float* data, size_t count, int root) { broadcast(data, count, ElementType::f32, root); }
  void send(const float* data, size_t count, int peer, int tag) { send(data, count, ElementType::f32, peer, tag); }
  void recv(float* data, size_t count, int peer, int tag) { recv(data, count, ElementType::f32, peer, tag); }

  virtual void barrier() = 0;
  // A barrier for ranks with nothing to do while others measure: it must not take a core from
  // the rank that measures (Open MPI's blocking calls busy-poll). A backend whose barrier does
  // not spin may use barrier().
  virtual void idle_barrier() = 0;
  // A double-precision sum over ranks of HOST memory (losses, gradient norms), in place, on every
  // backend.
  virtual void all_reduce_sum(double* data, size_t count) = 0;

  // Non-blocking collectives, all in place. Every rank starts the non-blocking collectives of a
  // communicator in one order (as blocking ones); they may be waited for in any order, and
  // blocking calls may run while they are pending. A device backend runs them on a stream of its
  // own, after the work already queued on the compute stream.
  std::unique_ptr<PendingCollective> start_all_reduce(void* data, size_t count, ElementType type, ReduceOp op);
  // `data` holds Σ block_counts elements (one count per rank), rank r's block right after those
  // of ranks below r. Rank r's block ← its block of the reduction over ranks of `data`; the rest
  // of `data` is left undefined. Blocks may differ in size (ZeRO-1's shards cut by a bucket).
  std::unique_ptr<PendingCollective> start_reduce_scatter(void* data, std::span<const size_t> block_counts,
                                                          ElementType type, ReduceOp op);
  // Blocks as start_reduce_scatter: every rank's `data` ← every rank's own block of it.
  std::unique_ptr<PendingCollective> start_all_gather(void* data, std::span<const size_t> block_counts,
                                                      ElementType type);
  std::unique_ptr<PendingCollective> start_all_reduce(float* data, size_t count, ReduceOp op) {
    return start_all_reduce(data, count, ElementType::f32, op);
  }
  std::unique_ptr<PendingCollective> start_reduce_scatter(float* data, std::span<const size_t> block_counts,
                                                          ReduceOp op) {
    return start_reduce_scatter(data, block_counts, ElementType::f32, op);
  }
  std::unique_ptr<PendingCollective> start_all_gather(float* data, std::span<const size_t> block_counts) {
    return start_all_gather(data, block_counts, ElementType::f32);
  }

  // Ranks with equal `color` form a new communicator, ordered by `key`. Collective over this one:
  // every rank calls it; a rank passing color < 0 joins no group and gets null.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

 protected:
  // The backend's operations, called with checked arguments (a reduction never gets i32 with
  // average; peers lie in [0, size); block_counts has size() entries).
  virtual void run_all_reduce(void* data, size_t count, ElementType type, ReduceOp op) = 0;
  virtual void run_all_gather(const void* send, void* recv, size_t count, ElementType type) = 0;
  virtual void run_reduce_scatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) = 0;
  virtual void run_broadcast(void* data, size_t count, ElementType type, int root) = 0;
  virtual void run_send(const void* data, size_t count, ElementType type, int peer, int tag) = 0;
  virtual void run_recv(void* data, size_t count, ElementType type, int peer, int tag) = 0;
  virtual std::unique_ptr<PendingCollective> run_start_all_reduce(void* data, size_t count, ElementType type,
                                                                  ReduceOp op) = 0;
  virtual std::unique_ptr<PendingCollective> run_start_reduce_scatter(void* data, std::span<const size_t> block_counts,
                                                                      ElementType type, ReduceOp op) = 0;
  virtual std::unique_ptr<PendingCollective> run_start_all_gather(void* data, std::span<const size_t> block_counts,
                                                                  ElementType type) = 0;
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
