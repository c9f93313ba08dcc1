// The MPI communicator's non-blocking collectives: the same values as the blocking ones, blocks of
// unequal sizes (ZeRO-1's shards cut by a gradient bucket), several pending at once and waited
// for out of order, test() until done, a dropped one completed by its destructor, and the
// chunked paths (buffers above max_count elements) with the chunk size lowered to 3.

#include "core/error.hpp"
#include "executor/comm/mpi_communicator.hpp"
#include "tests/executor/mpi/mpi_test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace loom::exec {
namespace {

using ::testing::ElementsAreArray;

// Rank r's data: distinct per rank and element, exact in fp32 sums of a few ranks.
std::vector<float> rank_data(int rank, size_t count) {
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = float(1000 * rank) + float(i) + 0.25f * float(rank % 3);
  return v;
}

std::vector<float> block(const std::vector<float>& data, std::span<const size_t> counts, int rank) {
  const size_t offset = std::accumulate(counts.begin(), counts.begin() + rank, size_t(0));
  return std::vector<float>(data.begin() + long(offset), data.begin() + long(offset + counts[size_t(rank)]));
}

// The sizes of every test, for one communicator: whole calls, and every chunked path.
std::vector<size_t> max_counts() { return {size_t(1) << 30, size_t(3)}; }

TEST(MpiNonBlocking, AllReduceEqualsTheBlockingOne) {
  for (size_t max_count : max_counts()) {
    mpi::MpiCommunicator comm(mpi::Comm::world(), max_count);
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::average}) {
      std::vector<float> blocking = rank_data(comm.rank(), 10), started = blocking;
      comm.all_reduce(blocking.data(), blocking.size(), op);
      comm.start_all_reduce(started.data(), started.size(), op)->wait();
      EXPECT_THAT(started, ElementsAreArray(blocking)) << "max_count " << max_count;
    }
  }
}

TEST(MpiNonBlocking, EqualBlockReduceScatterAndAllGatherEqualTheBlockingOnes) {
  for (size_t max_count : max_counts()) {
    mpi::MpiCommunicator comm(mpi::Comm::world(), max_count);
    const int r = comm.rank(), n = comm.size();
    constexpr size_t count = 5;
    const std::vector<size_t> counts(size_t(n), count);
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::average}) {
      const std::vector<float> input = rank_data(r, count * size_t(n));
      std::vector<float> blocking(count), started = input;
      comm.reduce_scatter(input.data(), blocking.data(), count, op);
      comm.start_reduce_scatter(started.data(), counts, op)->wait();
      EXPECT_THAT(block(started, counts, r), ElementsAreArray(blocking)) << "max_count " << max_count;
    }
    const std::vector<float> mine = rank_data(r, count);
    std::vector<float> blocking(count * size_t(n)), started(count * size_t(n), -1);
    comm.all_gather(mine.data(), blocking.data(), count);
    std::copy(mine.begin(), mine.end(), started.begin() + long(size_t(r) * count));
    comm.start_all_gather(started.data(), counts)->wait();
    EXPECT_THAT(started, ElementsAreArray(blocking)) << "max_count " << max_count;
  }
}

// Blocks of other sizes, an empty one among them (a bucket that misses a rank's shard).
std::vector<size_t> unequal_counts(int ranks) {
  std::vector<size_t> counts;
  for (int q = 0; q < ranks; ++q) counts.push_back(q == 1 ? 0 : size_t(2 * q + 3));
  return counts;
}

TEST(MpiNonBlocking, UnequalBlocksReduceAndGatherEachRanksOwnBlock) {
  for (size_t max_count : max_counts()) {
    mpi::MpiCommunicator comm(mpi::Comm::world(), max_count);
    const int r = comm.rank(), n = comm.size();
    const std::vector<size_t> counts = unequal_counts(n);
    const size_t total = std::accumulate(counts.begin(), counts.end(), size_t(0));
    std::vector<float> sum(total, 0);
    for (int q = 0; q < n; ++q) {
      const std::vector<float> theirs = rank_data(q, total);
      for (size_t i = 0; i < total; ++i) sum[i] += theirs[i];
    }
    std::vector<float> data = rank_data(r, total);
    comm.start_reduce_scatter(data.data(), counts, ReduceOp::sum)->wait();
    EXPECT_THAT(block(data, counts, r), ElementsAreArray(block(sum, counts, r))) << "max_count " << max_count;

    std::vector<float> averaged = rank_data(r, total), mean = sum;
    for (float& x : mean) x /= float(n);
    comm.start_reduce_scatter(averaged.data(), counts, ReduceOp::average)->wait();
    EXPECT_THAT(block(averaged, counts, r), ElementsAreArray(block(mean, counts, r))) << "max_count " << max_count;

    // Each rank holds only its own block of the truth; the gather completes everyone's.
    std::vector<float> gathered(total, -1);
    const std::vector<float> own = block(sum, counts, r);
    const size_t offset = std::accumulate(counts.begin(), counts.begin() + r, size_t(0));
    std::copy(own.begin(), own.end(), gathered.begin() + long(offset));
    comm.start_all_gather(gathered.data(), counts)->wait();
    EXPECT_THAT(gathered, ElementsAreArray(sum)) << "max_count " << max_count;
  }
}

// Started in one order on every rank, waited for in another: the buckets of a backward are
// started as they complete and all waited for at grad_sync, and a forward waits for its
// parameter gathers in the order it reads them.
TEST(MpiNonBlocking, SeveralPendingAtOnceWaitedOutOfOrder) {
  for (size_t max_count : max_counts()) {
    mpi::MpiCommunicator comm(mpi::Comm::world(), max_count);
    const int r = comm.rank(), n = comm.size();
    const std::vector<size_t> counts = unequal_counts(n);
    const size_t total = std::accumulate(counts.begin(), counts.end(), size_t(0));

    std::vector<float> reduced_a = rank_data(r, 7), reduced_b = rank_data(r + 1, 11), scattered = rank_data(r, total);
    std::vector<float> gathered(total, -1);
    const std::vector<float> own = rank_data(r, counts[size_t(r)]);
    const size_t offset = std::accumulate(counts.begin(), counts.begin() + r, size_t(0));
    std::copy(own.begin(), own.end(), gathered.begin() + long(offset));

    std::vector<float> want_a = reduced_a, want_b = reduced_b, want_scattered(total), want_gathered(total);
    comm.all_reduce(want_a.data(), want_a.size(), ReduceOp::average);
    comm.all_reduce(want_b.data(), want_b.size(), ReduceOp::sum);
    for (int q = 0; q < n; ++q) {
      const std::vector<float> theirs = rank_data(q, total), their_own = rank_data(q, counts[size_t(q)]);
      for (size_t i = 0; i < total; ++i) want_scattered[i] += theirs[i];
      const size_t at = std::accumulate(counts.begin(), counts.begin() + q, size_t(0));
      std::copy(their_own.begin(), their_own.end(), want_gathered.begin() + long(at));
    }

    auto a = comm.start_all_reduce(reduced_a.data(), reduced_a.size(), ReduceOp::average);
    auto s = comm.start_reduce_scatter(scattered.data(), counts, ReduceOp::sum);
    auto g = comm.start_all_gather(gathered.data(), counts);
    auto b = comm.start_all_reduce(reduced_b.data(), reduced_b.size(), ReduceOp::sum);
    // A blocking collective on the same communicator while they are pending.
    float one = 1;
    comm.all_reduce(&one, 1, ReduceOp::sum);
    EXPECT_EQ(one, float(n));
    // Rank-dependent order: ranks need not agree on the order of waiting.
    const std::vector<PendingCollective*> order =
        r % 2 == 0 ? std::vector<PendingCollective*>{g.get(), b.get(), a.get(), s.get()}
                   : std::vector<PendingCollective*>{s.get(), a.get(), g.get(), b.get()};
    for (PendingCollective* pending : order) pending->wait();
    EXPECT_THAT(reduced_a, ElementsAreArray(want_a)) << "max_count " << max_count;
    EXPECT_THAT(reduced_b, ElementsAreArray(want_b)) << "max_count " << max_count;
    EXPECT_THAT(block(scattered, counts, r), ElementsAreArray(block(want_scattered, counts, r)))
        << "max_count " << max_count;
    EXPECT_THAT(gathered, ElementsAreArray(want_gathered)) << "max_count " << max_count;
    b->wait();  // a second wait returns at once
  }
}

TEST(MpiNonBlocking, TestUntilDoneCompletesTheCollective) {
  auto world = mpi_world();
  std::vector<float> data = rank_data(world->rank(), 4), want = data;
  world->all_reduce(want.data(), want.size(), ReduceOp::average);
  auto pending = world->start_all_reduce(data.data(), data.size(), ReduceOp::average);
  while (!pending->test()) {
  }
  EXPECT_TRUE(pending->test());
  EXPECT_THAT(data, ElementsAreArray(want));  // averaged: test() finished it as wait() would
}

TEST(MpiNonBlocking, ADroppedCollectiveCompletesInItsDestructor) {
  auto world = mpi_world();
  std::vector<float> data = rank_data(world->rank(), 6), want = data;
  world->all_reduce(want.data(), want.size(), ReduceOp::sum);
  world->start_all_reduce(data.data(), data.size(), ReduceOp::sum);  // never waited for
  EXPECT_THAT(data, ElementsAreArray(want));
}

TEST(MpiNonBlocking, ZeroCountsAndAWrongNumberOfBlocks) {
  auto world = mpi_world();
  std::vector<float> sentinel = {7, 8};
  const std::vector<size_t> empty(size_t(world->size()), 0);
  world->start_all_reduce(sentinel.data(), 0, ReduceOp::average)->wait();
  world->start_reduce_scatter(sentinel.data(), empty, ReduceOp::average)->wait();
  world->start_all_gather(sentinel.data(), empty)->wait();
  EXPECT_THAT(sentinel, ElementsAreArray({7.0f, 8.0f}));
  const std::vector<size_t> too_few(size_t(world->size()) + 1, 1);
  EXPECT_THROW(world->start_reduce_scatter(sentinel.data(), too_few, ReduceOp::sum), Error);
  EXPECT_THROW(world->start_all_gather(sentinel.data(), too_few), Error);
}

}  // namespace
}  // namespace loom::exec
