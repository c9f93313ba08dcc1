// Communicator over MPI on host memory: the CPU executor's, and the one that GPUs shared by several
// ranks stage through (staged_communicator.hpp). Every communicator returns errors instead of
// aborting (MPI_ERRORS_RETURN), so a failure becomes a loom::Error naming the operation and the
// run can be marked failed in the store rather than dying mid-write.

#include "executor/comm/mpi_communicator.hpp"

#include "core/error.hpp"
#include "executor/comm/mpi_elements.hpp"

#include <algorithm>
#include <ctime>  // nanosleep
#include <cstring>
#include <string>
#include <vector>

namespace loom::exec {
namespace mpi {
namespace {

// MPI counts are int: walks [0, count) in pieces of at most max_count elements.
template <typename Body>
void for_chunks(size_t count, size_t max_count, Body&& body) {
  for (size_t offset = 0; offset < count; offset += max_count)
    body(offset, static_cast<int>(std::min(max_count, count - offset)));
}

}  // namespace

void check(int rc, std::string_view operation) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) length = 0;
  throw Error("MPI {} failed: {} (error code {})", operation,
              length > 0 ? std::string(text, size_t(length)) : std::string("unknown error"), rc);
}

Comm& Comm::operator=(Comm&& other) noexcept {
  if (this != &other) {
    reset();
    comm_ = other.release();
  }
  return *this;
}

MPI_Comm Comm::release() {
  MPI_Comm out = comm_;
  comm_ = MPI_COMM_NULL;
  return out;
}

void Comm::reset() {
  if (comm_ != MPI_COMM_NULL && comm_ != MPI_COMM_WORLD && comm_ != MPI_COMM_SELF) {
    // After MPI_Finalize freeing is erroneous; the process is ending, so leaking is harmless.
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);  // a destructor cannot report; nothing to do on error
  }
  comm_ = MPI_COMM_NULL;
}

MpiCommunicator::MpiCommunicator(Comm comm, size_t max_count)
    : comm_(std::move(comm)), max_count_(std::clamp<size_t>(max_count, 1, INT_MAX)) {
  if (!comm_) throw Error("MPI communicator: cannot wrap MPI_COMM_NULL");
  check(MPI_Comm_set_errhandler(handle(), MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check(MPI_Comm_rank(handle(), &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(handle(), &size_), "MPI_Comm_size");
}

void MpiCommunicator::run_all_reduce(void* data, size_t count, ElementType type, ReduceOp op) {
  if (type == ElementType::bf16) {
    // MPI has no bfloat16: reduce an fp32 copy and round the result back once, to nearest even.
    std::vector<float> wide = widen_bf16(data, count);
    run_all_reduce(wide.data(), count, ElementType::f32, op);
    narrow_to_bf16(wide.data(), count, data);
    return;
  }
  for_chunks(count, max_count_, [&](size_t offset, int n) {
    check(MPI_Allreduce(MPI_IN_PLACE, element_at(data, offset, type), n, carrier(type), reduction(op), handle()),
          "all_reduce (MPI_Allreduce)");
  });
  if (op == ReduceOp::average) divide_by_ranks(data, count, type, size_);
}

void MpiCommunicator::run_all_gather(const void* send, void* recv, size_t count, ElementType type) {
  void* own_block = element_at(recv, size_t(rank_) * count, type);
  if (count <= max_count_) {
    // MPI forbids aliasing send and recv; a shard that already sits in its slot of the full
    // buffer (ZeRO-1's parameter all-gather) is the in-place form.
    const void* source = send == own_block ? MPI_IN_PLACE : send;
    check(MPI_Allgather(source, int(count), carrier(type), recv, int(count), carrier(type), handle()),
          "all_gather (MPI_Allgather)");
    return;
  }
  // A block too large for one int count: each rank broadcasts its block, in chunks. Slower than
  // a ring, but only buffers above 2^31 elements per rank take this path.
  if (send != own_block) std::memmove(own_block, send, count * element_size(type));
  for (int root = 0; root < size_; ++root)
    run_broadcast(element_at(recv, size_t(root) * count, type), count, type, root);
}

void MpiCommunicator::run_reduce_scatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) {
  if (type == ElementType::bf16) {  // as run_all_reduce: in fp32, rounded back once
    const std::vector<float> wide_send = widen_bf16(send, count * size_t(size_));
    std::vector<float> wide_recv(count);
    run_reduce_scatter(wide_send.data(), wide_recv.data(), count, ElementType::f32, op);
    narrow_to_bf16(wide_recv.data(), count, recv);
    return;
  }
  // A result that goes to this rank's own block of the input (ZeRO-1 reducing into its gradient
  // buffer, as Megatron's distributed optimizer does) is the in-place form: no second buffer.
  const bool in_place = recv == element_at(send, size_t(rank_) * count, type);
  if (count <= max_count_) {
    if (in_place) {
      void* data = static_cast<std::byte*>(recv) - size_t(rank_) * count * element_size(type);
      // MPI leaves an in-place result at the start of the buffer: move it to this rank's block
      // (the blocks of other ranks hold nothing needed any more).
      check(MPI_Reduce_scatter_block(MPI_IN_PLACE, data, int(count), carrier(type), reduction(op), handle()),
            "reduce_scatter (MPI_Reduce_scatter_block)");
      if (rank_ != 0 && count > 0) std::memcpy(recv, data, count * element_size(type));  // blocks do not overlap
    } else {
      check(MPI_Reduce_scatter_block(send, recv, int(count), carrier(type), reduction(op), handle()),
            "reduce_scatter (MPI_Reduce_scatter_block)");
    }
  } else {
    // Too large for one int count: one chunked reduction to each block's owner.
    for (int root = 0; root < size_; ++root)
      reduce_to(element_at(send, size_t(root) * count, type), root == rank_ ? recv : nullptr, count, type, op, root);
  }
  if (op == ReduceOp::average) divide_by_ranks(recv, count, type, size_);
}

void MpiCommunicator::reduce_to(const void* send, void* recv, size_t count, ElementType type, ReduceOp op, int root) {
  for_chunks(count, max_count_, [&](size_t offset, int n) {
    // At the root, a result over its own input is MPI's in-place form.
    const void* source = recv == send ? MPI_IN_PLACE : element_at(send, offset, type);
    check(MPI_Reduce(source, recv != nullptr ? element_at(recv, offset, type) : nullptr, n, carrier(type),
                     reduction(op), root, handle()),
          "reduce_scatter (MPI_Reduce)");
  });
}

void MpiCommunicator::run_broadcast(void* data, size_t count, ElementType type, int root) {
  for_chunks(count, max_count_, [&](size_t offset, int n) {
    check(MPI_Bcast(element_at(data, offset, type), n, carrier(type), root, handle()), "broadcast (MPI_Bcast)");
  });
}

void MpiCommunicator::run_send(const void* data, size_t count, ElementType type, int peer, int tag) {
  // Chunks of one message share the tag; MPI keeps messages between a pair on one communicator
  // in order, so the receiver's chunks match them one to one.
  for_chunks(count, max_count_, [&](size_t offset, int n) {
    check(MPI_Send(element_at(data, offset, type), n, carrier(type), peer, tag, handle()), "send (MPI_Send)");
  });
}

void MpiCommunicator::run_recv(void* data, size_t count, ElementType type, int peer, int tag) {
  for_chunks(count, max_count_, [&](size_t offset, int n) {
    MPI_Status status;
    check(MPI_Recv(element_at(data, offset, type), n, carrier(type), peer, tag, handle(), &status),
          "recv (MPI_Recv)");
    // A shorter message is legal MPI but means the two sides disagree on a shape: fail loudly
    // instead of training on a half-filled buffer.
    int received = 0;
    check(MPI_Get_count(&status, carrier(type), &received), "recv (MPI_Get_count)");
    if (received != n)
      throw Error("MPI recv from rank {} with tag {}: got {} {} elements, expected {}", peer, tag, received,
                  to_string(type), n);
  });
}

void MpiCommunicator::barrier() { check(MPI_Barrier(handle()), "barrier (MPI_Barrier)"); }

void MpiCommunicator::idle_barrier() {
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Ibarrier(handle(), &request), "barrier (MPI_Ibarrier)");
  // Waking every millisecond made rank 0's kernels 10–40 % slower with 4 ranks on 2 cores; every
  // 10 ms they measure as with 2 ranks, and a barrier lasts at most 10 ms longer.
  const timespec ten_milliseconds{0, 10'000'000};
  for (int done = 0;;) {
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "barrier (MPI_Test)");
    if (done) return;
    nanosleep(&ten_milliseconds, nullptr);
  }
}

void MpiCommunicator::all_reduce_sum(double* data, size_t count) {
  for_chunks(count, max_count_, [&](size_t offset, int n) {
    check(MPI_Allreduce(MPI_IN_PLACE, data + offset, n, MPI_DOUBLE, MPI_SUM, handle()),
          "all_reduce_sum (MPI_Allreduce)");
  });
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) { return split_mpi(color, key); }

std::unique_ptr<MpiCommunicator> MpiCommunicator::split_mpi(int color, int key) {
  MPI_Comm out = MPI_COMM_NULL;
  check(MPI_Comm_split(handle(), color < 0 ? MPI_UNDEFINED : color, key, &out),
        "split (MPI_Comm_split)");
  Comm owned(out);  // owns it before anything below can throw
  if (!owned) return nullptr;
  return std::make_unique<MpiCommunicator>(std::move(owned), max_count_);
}

}  // namespace mpi

}  // namespace loom::exec
