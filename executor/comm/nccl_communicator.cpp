// The NCCL communicator (nccl_communicator.hpp says how it orders its work and what it does on
// errors). A Channel owns one ncclComm_t and the communication stream that the start_… forms run
// on; the PendingCollectives share it, so that one dropped after its communicator still has the
// stream and the event it waits for.

#include "executor/comm/nccl_communicator.hpp"

#include "core/error.hpp"
#include "executor/comm/completed_collective.hpp"
#include "executor/comm/cuda_support.hpp"

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nccl.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>

namespace loom::exec::nccl {
namespace {

using cuda::check_cuda;
using cuda::cuda_failure;

ncclDataType_t nccl_type(ElementType type) {
  switch (type) {
    case ElementType::f32:
      return ncclFloat32;
    case ElementType::f64:
      return ncclFloat64;
    case ElementType::bf16:
      return ncclBfloat16;
    case ElementType::i32:
      return ncclInt32;
  }
  throw Error("NCCL: unknown element type {}", int(type));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::average:
      return ncclAvg;
    case ReduceOp::max:
      return ncclMax;
  }
  throw Error("NCCL: unknown reduction {}", int(op));
}

void* element_at(void* base, size_t index, ElementType type) {
  return static_cast<std::byte*>(base) + index * element_size(type);
}

std::string nccl_failure(ncclResult_t result, ncclComm_t comm, std::string_view what) {
  const char* detail = ncclGetLastError(comm);
  return fmt::format(
      "NCCL {} failed: {}{}", what, ncclGetErrorString(result),
      detail != nullptr && *detail != '\0' ? fmt::format(" ({})", detail) : std::string());
}

}  // namespace

class Channel {
 public:
  // Takes `comm`: destroyed with the channel, also when this constructor throws.
  explicit Channel(ncclComm_t comm) : comm_(comm) {
    try {
      // Non-blocking: the communication stream must not wait for CUDA's legacy default stream.
      check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                 "cudaStreamCreateWithFlags");
      check_cuda(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming),
                 "cudaEventCreateWithFlags");
    } catch (...) {
      release();
      throw;
    }
  }
  ~Channel() { release(); }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // The communicator, unless an earlier error aborted it.
  ncclComm_t comm(std::string_view operation) const {
    if (comm_ == nullptr)
      throw Error("NCCL {}: the communicator was aborted after an earlier error and cannot be used",
                  operation);
    return comm_;
  }
  cudaStream_t stream() const { return stream_; }

  void check(ncclResult_t result, std::string_view what) {
    if (result != ncclSuccess) fail(nccl_failure(result, comm_, what));
  }
  // The description is formatted only on failure: this runs for every collective.
  void check(ncclResult_t result, std::string_view operation, size_t count, ElementType type) {
    if (result != ncclSuccess)
      fail(nccl_failure(result, comm_,
                        fmt::format("{} of {} {} elements", operation, count, to_string(type))));
  }
  void check(cudaError_t result, std::string_view call, std::string_view operation) {
    if (result != cudaSuccess)
      fail(cuda_failure(result, fmt::format("{} for NCCL {}", call, operation)));
  }

  // An error NCCL found while the device ran an operation (a peer that failed, a network error):
  // asked by test() while the done-event has not fired, since a collective that never completes
  // would otherwise keep answering "not yet".
  void check_asynchronous(std::string_view operation) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t result = ncclCommGetAsyncError(comm(operation), &state);
    if (result != ncclSuccess) state = result;
    if (state != ncclSuccess && state != ncclInProgress)
      fail(nccl_failure(state, comm_, operation));
  }

  // Makes the communication stream wait for the work queued on `compute` so far. One event
  // serves every start: a stream waits for the event's record at the time of the wait call.
  void follow(cudaStream_t compute, std::string_view operation) {
    check(cudaEventRecord(ready_, compute), "cudaEventRecord", operation);
    check(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent", operation);
  }

 private:
  // Whatever failed, this rank did not take its part in an operation the other ranks are in:
  // the communicator is out of step for good. Aborting it ends this rank's queued NCCL work
  // (which would otherwise wait for peers forever) and makes every later call throw.
  [[noreturn]] void fail(const std::string& message) {
    if (comm_ != nullptr) ncclCommAbort(comm_);  // the error being reported is the one that matters
    comm_ = nullptr;
    throw Error(message);
  }

  void release() noexcept {
    // Destructors cannot report; an error here leaves only resources the process ends with.
    if (comm_ != nullptr) ncclCommDestroy(comm_);
    if (ready_ != nullptr) cudaEventDestroy(ready_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    comm_ = nullptr;
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
};

namespace {

// A collective queued on the communication stream, complete when its done-event fires.
class NcclPendingCollective final : public PendingCollective {
 public:
  NcclPendingCollective(std::shared_ptr<Channel> channel, std::string operation)
      : channel_(std::move(channel)), operation_(std::move(operation)) {
    channel_->check(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming),
                    "cudaEventCreateWithFlags", operation_);
  }
  ~NcclPendingCollective() override {
    // As the contract asks, a dropped collective is completed: the compute stream, on which the
    // buffer is freed and reused, waits for it.
    if (!waited_) {
      try {
        wait();
      } catch (...) {  // nothing to report to from a destructor
      }
    }
    if (done_ != nullptr) cudaEventDestroy(done_);  // released by CUDA once the event has fired
  }
  NcclPendingCollective(const NcclPendingCollective&) = delete;
  NcclPendingCollective& operator=(const NcclPendingCollective&) = delete;

  // After the collective was queued on the communication stream.
  void queued() {
    channel_->check(cudaEventRecord(done_, channel_->stream()), "cudaEventRecord", operation_);
  }

  bool test() override {
    if (waited_) return true;
    const cudaError_t state = cudaEventQuery(done_);
    if (state == cudaErrorNotReady) {
      channel_->check_asynchronous(operation_);
      return false;
    }
    channel_->check(state, "cudaEventQuery", operation_);
    wait();
    return true;
  }

  // Stream-ordered: later kernels of the compute stream see the result; the host goes on.
  void wait() override {
    if (waited_) return;
    channel_->check(cudaStreamWaitEvent(cuda::compute_stream_for("NCCL " + operation_), done_, 0),
                    "cudaStreamWaitEvent", operation_);
    waited_ = true;
  }

 private:
  std::shared_ptr<Channel> channel_;
  std::string operation_;
  cudaEvent_t done_ = nullptr;
  bool waited_ = false;
};

// A start_… collective up to the point where its NCCL calls go on the communication stream, which
// then waits for everything already queued on the compute stream.
std::unique_ptr<NcclPendingCollective> open_pending(const std::shared_ptr<Channel>& channel,
                                                    std::string_view operation) {
  const cudaStream_t compute = cuda::compute_stream_for(fmt::format("NCCL {}", operation));
  auto pending = std::make_unique<NcclPendingCollective>(channel, std::string(operation));
  channel->follow(compute, operation);
  return pending;
}

// One NCCL group of one call per non-empty block, `issue(rank, offset, count)` for the block of
// rank r: the unequal blocks of a reduce-scatter (ncclReduce to r) or an all-gather
// (ncclBroadcast from r). Empty blocks are skipped alike on every rank: all hold the same counts.
template <typename Issue>
ncclResult_t per_block(std::span<const size_t> block_counts, Issue&& issue) {
  ncclResult_t result = ncclGroupStart();
  if (result != ncclSuccess) return result;
  size_t offset = 0;
  for (size_t r = 0; r < block_counts.size() && result == ncclSuccess; ++r) {
    if (block_counts[r] > 0) result = issue(int(r), offset, block_counts[r]);
    offset += block_counts[r];
  }
  const ncclResult_t end = ncclGroupEnd();  // closes the group after a failure inside it too
  return result != ncclSuccess ? result : end;
}

bool equal_blocks(std::span<const size_t> block_counts) {
  return std::all_of(block_counts.begin(), block_counts.end(),
                     [&](size_t n) { return n == block_counts.front(); });
}

size_t total_of(std::span<const size_t> block_counts) {
  size_t total = 0;
  for (size_t n : block_counts) total += n;
  return total;
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::unique_ptr<mpi::MpiCommunicator> host)
    : host_(std::move(host)) {
  if (!host_) throw Error("NCCL communicator: no MPI communicator to bootstrap over");
  // NCCL joins on the current device, which the CUDA kernels selected when they were made.
  cuda::compute_stream_for("NCCL bootstrap");
  // Rank 0's outcome travels with the id, so that a failure there fails every rank instead of
  // leaving the others in the broadcast or in ncclCommInitRank.
  struct {
    ncclUniqueId id;
    int result;
  } bootstrap{};
  if (host_->rank() == 0) bootstrap.result = ncclGetUniqueId(&bootstrap.id);
  mpi::check(MPI_Bcast(&bootstrap, int(sizeof bootstrap), MPI_BYTE, 0, host_->handle()),
             "bootstrap of NCCL (MPI_Bcast of the unique id)");
  if (bootstrap.result != ncclSuccess)
    throw Error("NCCL ncclGetUniqueId failed on rank 0: {}",
                ncclGetErrorString(ncclResult_t(bootstrap.result)));
  ncclComm_t comm = nullptr;
  const ncclResult_t result = ncclCommInitRank(&comm, host_->size(), bootstrap.id, host_->rank());
  if (result != ncclSuccess)  // NCCL frees a communicator whose initialisation failed
    throw Error(nccl_failure(
        result, nullptr,
        fmt::format("ncclCommInitRank (rank {} of {})", host_->rank(), host_->size())));
  channel_ = std::make_shared<Channel>(comm);
}

NcclCommunicator::NcclCommunicator(std::shared_ptr<Channel> channel,
                                   std::unique_ptr<mpi::MpiCommunicator> host)
    : channel_(std::move(channel)), host_(std::move(host)) {
  // Both splits order the ranks by (key, parent rank), and the parents agree: so must these.
  int nccl_rank = -1;
  channel_->check(ncclCommUserRank(channel_->comm("split"), &nccl_rank),
                  "split (ncclCommUserRank)");
  if (nccl_rank != host_->rank())
    throw Error("NCCL split: rank {} in NCCL's group but {} in MPI's", nccl_rank, host_->rank());
}

NcclCommunicator::~NcclCommunicator() = default;

void NcclCommunicator::barrier() {
  host_->barrier();
}

void NcclCommunicator::idle_barrier() {
  host_->idle_barrier();
}

void NcclCommunicator::all_reduce_sum(double* data, size_t count) {
  host_->all_reduce_sum(data, count);
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  ncclComm_t child = nullptr;
  channel_->check(ncclCommSplit(channel_->comm("split"), color < 0 ? NCCL_SPLIT_NOCOLOR : color,
                                key, &child, nullptr),
                  "split (ncclCommSplit)");
  std::shared_ptr<Channel> channel = child != nullptr ? std::make_shared<Channel>(child) : nullptr;
  std::unique_ptr<mpi::MpiCommunicator> host = host_->split_mpi(color, key);
  if ((channel == nullptr) != (host == nullptr))
    throw Error("NCCL split: NCCL and MPI disagree on whether rank {} (color {}) joins a group",
                rank(), color);
  if (channel == nullptr) return nullptr;
  return std::unique_ptr<Communicator>(new NcclCommunicator(std::move(channel), std::move(host)));
}

void NcclCommunicator::run_all_reduce(void* data, size_t count, ElementType type, ReduceOp op) {
  if (count == 0) return;
  channel_->check(
      ncclAllReduce(data, data, count, nccl_type(type), nccl_op(op), channel_->comm("all_reduce"),
                    cuda::compute_stream_for("NCCL all_reduce")),
      "all_reduce (ncclAllReduce)", count, type);
}

void NcclCommunicator::run_all_gather(const void* send, void* recv, size_t count,
                                      ElementType type) {
  if (count == 0) return;
  // NCCL's in-place form is the one of the interface: send at this rank's block of recv.
  channel_->check(ncclAllGather(send, recv, count, nccl_type(type), channel_->comm("all_gather"),
                                cuda::compute_stream_for("NCCL all_gather")),
                  "all_gather (ncclAllGather)", count, type);
}

void NcclCommunicator::run_reduce_scatter(const void* send, void* recv, size_t count,
                                          ElementType type, ReduceOp op) {
  if (count == 0) return;
  // In place as in the interface: recv at this rank's block of send.
  channel_->check(ncclReduceScatter(send, recv, count, nccl_type(type), nccl_op(op),
                                    channel_->comm("reduce_scatter"),
                                    cuda::compute_stream_for("NCCL reduce_scatter")),
                  "reduce_scatter (ncclReduceScatter)", count, type);
}

void NcclCommunicator::run_broadcast(void* data, size_t count, ElementType type, int root) {
  if (count == 0) return;
  channel_->check(
      ncclBroadcast(data, data, count, nccl_type(type), root, channel_->comm("broadcast"),
                    cuda::compute_stream_for("NCCL broadcast")),
      "broadcast (ncclBroadcast)", count, type);
}

void NcclCommunicator::run_send(const void* data, size_t count, ElementType type, int peer,
                                int /*tag*/) {
  if (count == 0) return;
  channel_->check(ncclSend(data, count, nccl_type(type), peer, channel_->comm("send"),
                           cuda::compute_stream_for("NCCL send")),
                  fmt::format("send to rank {} (ncclSend)", peer), count, type);
}

void NcclCommunicator::run_recv(void* data, size_t count, ElementType type, int peer, int /*tag*/) {
  if (count == 0) return;
  channel_->check(ncclRecv(data, count, nccl_type(type), peer, channel_->comm("recv"),
                           cuda::compute_stream_for("NCCL recv")),
                  fmt::format("recv from rank {} (ncclRecv)", peer), count, type);
}

std::unique_ptr<PendingCollective> NcclCommunicator::run_start_all_reduce(void* data, size_t count,
                                                                          ElementType type,
                                                                          ReduceOp op) {
  if (count == 0) return std::make_unique<CompletedCollective>();
  auto pending = open_pending(channel_, "start_all_reduce");
  channel_->check(ncclAllReduce(data, data, count, nccl_type(type), nccl_op(op),
                                channel_->comm("start_all_reduce"), channel_->stream()),
                  "start_all_reduce (ncclAllReduce)", count, type);
  pending->queued();
  return pending;
}

std::unique_ptr<PendingCollective> NcclCommunicator::run_start_reduce_scatter(
    void* data, std::span<const size_t> block_counts, ElementType type, ReduceOp op) {
  const size_t total = total_of(block_counts);
  if (total == 0) return std::make_unique<CompletedCollective>();
  auto pending = open_pending(channel_, "start_reduce_scatter");
  ncclComm_t comm = channel_->comm("start_reduce_scatter");
  if (equal_blocks(block_counts)) {
    const size_t count = block_counts.front();
    channel_->check(ncclReduceScatter(data, element_at(data, size_t(rank()) * count, type), count,
                                      nccl_type(type), nccl_op(op), comm, channel_->stream()),
                    "start_reduce_scatter (ncclReduceScatter)", total, type);
  } else {
    // Each block reduced to its owner, in place there; the other ranks' copies are left as they
    // are (the contract leaves them undefined).
    channel_->check(per_block(block_counts,
                              [&](int root, size_t offset, size_t count) {
                                void* block = element_at(data, offset, type);
                                return ncclReduce(block, block, count, nccl_type(type), nccl_op(op),
                                                  root, comm, channel_->stream());
                              }),
                    "start_reduce_scatter (a group of ncclReduce, one per block)", total, type);
  }
  pending->queued();
  return pending;
}

std::unique_ptr<PendingCollective> NcclCommunicator::run_start_all_gather(
    void* data, std::span<const size_t> block_counts, ElementType type) {
  const size_t total = total_of(block_counts);
  if (total == 0) return std::make_unique<CompletedCollective>();
  auto pending = open_pending(channel_, "start_all_gather");
  ncclComm_t comm = channel_->comm("start_all_gather");
  if (equal_blocks(block_counts)) {
    const size_t count = block_counts.front();
    channel_->check(ncclAllGather(element_at(data, size_t(rank()) * count, type), data, count,
                                  nccl_type(type), comm, channel_->stream()),
                    "start_all_gather (ncclAllGather)", total, type);
  } else {
    channel_->check(per_block(block_counts,
                              [&](int root, size_t offset, size_t count) {
                                void* block = element_at(data, offset, type);
                                return ncclBroadcast(block, block, count, nccl_type(type), root,
                                                     comm, channel_->stream());
                              }),
                    "start_all_gather (a group of ncclBroadcast, one per block)", total, type);
  }
  pending->queued();
  return pending;
}

}  // namespace loom::exec::nccl
