#pragma once
// The MPI communicator's internals, shared by mpi_communicator.cpp, the NCCL bootstrap (which
// needs the raw MPI_Comm to broadcast its unique id) and the MPI tests. Not part of the public
// contract: code outside executor/comm talks to Communicator only.

#include "executor/comm/communicator.hpp"
#include "executor/comm/mpi_session.hpp"

// Loom uses MPI's C API only; the C++ bindings that mpi.h pulls in by default are deprecated
// and warn under -Wextra.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <climits>
#include <cstddef>
#include <memory>
#include <string_view>

namespace loom::exec::mpi {

// Throws loom::Error "MPI <operation> failed: <MPI's own message>" unless rc is MPI_SUCCESS.
// Only meaningful on communicators with MPI_ERRORS_RETURN; the default handler aborts instead.
void check(int rc, std::string_view operation);

// Owns one MPI_Comm and frees it on destruction. MPI_COMM_WORLD (and MPI_COMM_NULL) are held
// without ownership: world belongs to MPI itself and must never be freed.
class Comm {
 public:
  Comm() = default;
  explicit Comm(MPI_Comm comm) : comm_(comm) {}
  static Comm world() { return Comm(MPI_COMM_WORLD); }
  ~Comm() { reset(); }
  Comm(Comm&& other) noexcept : comm_(other.release()) {}
  Comm& operator=(Comm&& other) noexcept;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  MPI_Comm get() const { return comm_; }
  explicit operator bool() const { return comm_ != MPI_COMM_NULL; }
  MPI_Comm release();
  void reset();

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

// The ranks of MPI_COMM_WORLD on this rank's node (MPI_COMM_TYPE_SHARED), in world order.
// Collective over the world.
Comm node_comm();

// Collectives and point-to-point over MPI on host memory, in every element type. MPI has no
// bfloat16, so reductions of bf16 widen it to an fp32 host copy, reduce that, and round the
// result back to bf16 once, to nearest even (executor/bfloat16.hpp). (NCCL rounds to bf16 after
// each step of its ring: the two may differ in the last bit.) `average` divides after the sum.
class MpiCommunicator final : public Communicator {
 public:
  // `max_count` caps the elements per MPI call: MPI counts are int, so larger buffers go in
  // pieces. Tests lower it to exercise the chunked paths without gigabytes of memory.
  explicit MpiCommunicator(Comm comm, size_t max_count = INT_MAX);

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void barrier() override;
  // MPI_Ibarrier, then MPI_Test between sleeps of 10 ms until every rank has arrived.
  void idle_barrier() override;
  void all_reduce_sum(double* data, size_t count) override;
  // color < 0: this rank joins no group (MPI_UNDEFINED) and gets null.
  std::unique_ptr<Communicator> split(int color, int key) override;
  // split() with its concrete type, for the device communicators that hold an MPI one of the
  // same ranks and split both together.
  std::unique_ptr<MpiCommunicator> split_mpi(int color, int key);

  MPI_Comm handle() const { return comm_.get(); }

 protected:
  void run_all_reduce(void* data, size_t count, ElementType type, ReduceOp op) override;
  void run_all_gather(const void* send, void* recv, size_t count, ElementType type) override;
  void run_reduce_scatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) override;
  void run_broadcast(void* data, size_t count, ElementType type, int root) override;
  void run_send(const void* data, size_t count, ElementType type, int peer, int tag) override;
  void run_recv(void* data, size_t count, ElementType type, int peer, int tag) override;
  // MPI_Iallreduce, MPI_Ireduce_scatter and MPI_Iallgatherv (mpi_nonblocking.cpp); a buffer above
  // max_count elements goes as several requests (MPI_Ireduce and MPI_Ibcast per block).
  std::unique_ptr<PendingCollective> run_start_all_reduce(void* data, size_t count, ElementType type,
                                                          ReduceOp op) override;
  std::unique_ptr<PendingCollective> run_start_reduce_scatter(void* data, std::span<const size_t> block_counts,
                                                              ElementType type, ReduceOp op) override;
  std::unique_ptr<PendingCollective> run_start_all_gather(void* data, std::span<const size_t> block_counts,
                                                          ElementType type) override;

 private:
  void reduce_to(const void* send, void* recv, size_t count, ElementType type, ReduceOp op, int root);

  Comm comm_;
  size_t max_count_;
  int rank_ = 0;
  int size_ = 0;
};

}  // namespace loom::exec::mpi
