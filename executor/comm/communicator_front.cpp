// Communicator's non-blocking front: the checks every backend needs, done once here, before the
// backend's run_… function. Each check is local and every rank of a correct program takes the
// same decision, so a refused call throws on every rank alike and leaves none waiting in a
// collective.

#include "executor/comm/communicator.hpp"

#include "core/error.hpp"

#include <string_view>

namespace loom::exec {
namespace {

// An integer mean would be truncated differently by each backend (or not at all); callers that
// want one sum and divide where they say how to round.
void require_reducible(std::string_view operation, ElementType type, ReduceOp op) {
  if (op == ReduceOp::average && type == ElementType::i32)
    throw Error("{}: average of {} is not supported (an integer mean would be truncated); use sum",
                operation, to_string(type));
}

void require_rank(std::string_view operation, std::string_view role, int value, int size) {
  if (value < 0 || value >= size)
    throw Error("{}: {} {} is not a rank of this communicator of {} ranks (0 to {})", operation,
                role, value, size, size - 1);
}

void require_one_block_per_rank(std::string_view operation, std::span<const size_t> block_counts,
                                int size) {
  if (block_counts.size() != size_t(size))
    throw Error("{}: {} block counts for a communicator of {} ranks (one per rank)", operation,
                block_counts.size(), size);
}

}  // namespace

void Communicator::all_reduce(void* data, size_t count, ElementType type, ReduceOp op) {
  require_reducible("all_reduce", type, op);
  run_all_reduce(data, count, type, op);
}

void Communicator::all_gather(const void* send, void* recv, size_t count, ElementType type) {
  run_all_gather(send, recv, count, type);
}

void Communicator::reduce_scatter(const void* send, void* recv, size_t count, ElementType type,
                                  ReduceOp op) {
  require_reducible("reduce_scatter", type, op);
  run_reduce_scatter(send, recv, count, type, op);
}

void Communicator::broadcast(void* data, size_t count, ElementType type, int root) {
  require_rank("broadcast", "root", root, size());
  run_broadcast(data, count, type, root);
}

void Communicator::send(const void* data, size_t count, ElementType type, int peer, int tag) {
  require_rank("send", "peer", peer, size());
  run_send(data, count, type, peer, tag);
}

void Communicator::recv(void* data, size_t count, ElementType type, int peer, int tag) {
  require_rank("recv", "peer", peer, size());
  run_recv(data, count, type, peer, tag);
}

std::unique_ptr<PendingCollective> Communicator::start_all_reduce(void* data, size_t count,
                                                                  ElementType type, ReduceOp op) {
  require_reducible("start_all_reduce", type, op);
  return run_start_all_reduce(data, count, type, op);
}

std::unique_ptr<PendingCollective> Communicator::start_reduce_scatter(
    void* data, std::span<const size_t> block_counts, ElementType type, ReduceOp op) {
  require_reducible("start_reduce_scatter", type, op);
  require_one_block_per_rank("start_reduce_scatter", block_counts, size());
  return run_start_reduce_scatter(data, block_counts, type, op);
}

std::unique_ptr<PendingCollective> Communicator::start_all_gather(
    void* data, std::span<const size_t> block_counts, ElementType type) {
  require_one_block_per_rank("start_all_gather", block_counts, size());
  return run_start_all_gather(data, block_counts, type);
}

}  // namespace loom::exec
