#pragma once
// Collective and point-to-point communication among a group of ranks, behind one interface with
// an MPI implementation (CPU) and an NCCL one (GPU). Buffers are fp32 host or device memory as
// the backend expects; counts are in elements. Every call blocks until this rank's part is done.

#include "core/rank_layout.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace loom::exec {

enum class ReduceOp : uint8_t { sum, average };

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
