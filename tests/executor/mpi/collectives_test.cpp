// Every collective of the MPI communicator against values worked out by hand for 4 ranks, and
// the chunked paths (buffers above INT_MAX elements) with the chunk size lowered to 3.

#include "core/error.hpp"
#include "executor/comm/mpi_communicator.hpp"
#include "tests/executor/mpi/mpi_test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace loom::exec {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

TEST(MpiCollectives, AllReduceSumAndAverage) {
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  const float r = float(world->rank());
  std::vector<float> sum = {r, r * r, 1};
  world->all_reduce(sum.data(), sum.size(), ReduceOp::sum);
  EXPECT_THAT(sum, ElementsAre(6, 14, 4));  // 0+1+2+3, 0+1+4+9, 4·1
  std::vector<float> average = {r, r * r, 1};
  world->all_reduce(average.data(), average.size(), ReduceOp::average);
  EXPECT_THAT(average, ElementsAre(1.5, 3.5, 1));
}

TEST(MpiCollectives, AllGatherInRankOrder) {
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  const float r = float(world->rank());
  const std::vector<float> send = {10 * r, 10 * r + 1};
  std::vector<float> recv(8, -1);
  world->all_gather(send.data(), recv.data(), 2);
  EXPECT_THAT(recv, ElementsAre(0, 1, 10, 11, 20, 21, 30, 31));
}

TEST(MpiCollectives, AllGatherFromOwnSlot) {
  // ZeRO-1 gathers parameters whose shard already sits in its slot of the full buffer.
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  const int r = world->rank();
  std::vector<float> full(8, -1);
  full[size_t(2 * r)] = float(10 * r);
  full[size_t(2 * r + 1)] = float(10 * r + 1);
  world->all_gather(full.data() + 2 * r, full.data(), 2);
  EXPECT_THAT(full, ElementsAre(0, 1, 10, 11, 20, 21, 30, 31));
}

TEST(MpiCollectives, ReduceScatterBlocks) {
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  const int r = world->rank();
  std::vector<float> send(8);
  for (size_t i = 0; i < send.size(); ++i) send[i] = float(100 * r + int(i));
  // Element i sums to 100·(0+1+2+3) + 4i = 600 + 4i; rank r keeps elements 2r and 2r+1.
  std::vector<float> recv(2, -1);
  world->reduce_scatter(send.data(), recv.data(), 2, ReduceOp::sum);
  EXPECT_THAT(recv, ElementsAre(600 + 8 * r, 604 + 8 * r));
  world->reduce_scatter(send.data(), recv.data(), 2, ReduceOp::average);
  EXPECT_THAT(recv, ElementsAre(150 + 2 * r, 151 + 2 * r));
}

TEST(MpiCollectives, BroadcastFromNonZeroRoot) {
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  std::vector<float> data = world->rank() == 2 ? std::vector<float>{1, 2, 3}
                                               : std::vector<float>{0, 0, 0};
  world->broadcast(data.data(), data.size(), 2);
  EXPECT_THAT(data, ElementsAre(1, 2, 3));
}

// Passes a message to the next rank around the ring. Even ranks send first and odd ranks receive
// first, so the exchange cannot deadlock even when MPI_Send does not buffer.
std::vector<float> ring_shift(Communicator& comm, const std::vector<float>& out, int tag_base) {
  const int r = comm.rank(), n = comm.size();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  std::vector<float> in(out.size(), -1);
  if (r % 2 == 0) comm.send(out.data(), out.size(), next, tag_base + r);
  comm.recv(in.data(), in.size(), prev, tag_base + prev);
  if (r % 2 == 1) comm.send(out.data(), out.size(), next, tag_base + r);
  return in;
}

TEST(MpiCollectives, SendRecvRingWithTags) {
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  const int r = world->rank(), prev = (r + 3) % 4;
  EXPECT_THAT(ring_shift(*world, {float(r), float(10 * r)}, 100),
              ElementsAre(float(prev), float(10 * prev)));
  // A second message with other tags and another length, as the pipeline sends them.
  EXPECT_THAT(ring_shift(*world, {float(r), 1, 2}, 7000),
              ElementsAre(float(prev), 1, 2));
}

TEST(MpiCollectives, AllReduceSumOfDoubles) {
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  const double r = world->rank();
  // 4e15 + 6 needs 52 bits: exact in double, lost in float.
  std::vector<double> data = {1e15 + r, 0.25 * r};
  world->all_reduce_sum(data.data(), data.size());
  EXPECT_THAT(data, ElementsAre(4e15 + 6, 1.5));
}

TEST(MpiCollectives, BarrierWaitsForTheSlowestRank) {
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  world->barrier();  // line everyone up, then hold rank 0 back
  const auto start = std::chrono::steady_clock::now();
  if (world->rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  world->barrier();
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(200)) << "rank " << world->rank();
}

TEST(MpiCollectives, SplitOrdersByKeyAndLetsRanksOptOut) {
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  const int r = world->rank();
  // Rank 3 opts out; ranks 0..2 form one group ordered by descending global rank.
  auto group = world->split(r == 3 ? -1 : 5, -r);
  if (r == 3) {
    EXPECT_EQ(group, nullptr);
    return;
  }
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->size(), 3);
  EXPECT_EQ(group->rank(), 2 - r);
  const float me = float(r);
  std::vector<float> members(3, -1);
  group->all_gather(&me, members.data(), 1);
  EXPECT_THAT(members, ElementsAre(2, 1, 0));
}

// A zero count is a call every rank may make (an empty shard, a stage without biases): it must
// neither fail, nor touch the buffers, nor leave the ranks out of step for the next collective.
TEST(MpiCollectives, ZeroCountsAreNoOps) {
  auto world = mpi_world();
  std::vector<float> sentinel = {7, 8};
  std::vector<double> sentinel_double = {9};
  EXPECT_NO_THROW(world->all_reduce(sentinel.data(), 0, ReduceOp::average));
  EXPECT_NO_THROW(world->all_gather(sentinel.data(), sentinel.data() + 1, 0));
  EXPECT_NO_THROW(world->reduce_scatter(sentinel.data(), sentinel.data() + 1, 0, ReduceOp::sum));
  EXPECT_NO_THROW(world->broadcast(sentinel.data(), 0, 0));
  EXPECT_NO_THROW(world->all_reduce_sum(sentinel_double.data(), 0));
  EXPECT_NO_THROW(world->all_reduce(nullptr, 0, ReduceOp::sum));
  EXPECT_THAT(sentinel, ElementsAre(7, 8));
  EXPECT_THAT(sentinel_double, ElementsAre(9));
  std::vector<float> one = {1};
  world->all_reduce(one.data(), 1, ReduceOp::sum);
  EXPECT_THAT(one, ElementsAre(float(world->size()))) << "the ranks are still in step";
}

// The idle barrier (profile: ranks waiting while rank 0 measures) still waits for every rank:
// ranks that arrive first leave no earlier than rank 0, which arrives after a sleep.
TEST(MpiCollectives, IdleBarrierWaitsForTheLastRank) {
  LOOM_REQUIRE_RANKS(2);
  auto world = mpi_world();
  constexpr auto kLateBy = std::chrono::milliseconds(300);
  world->barrier();
  const auto start = std::chrono::steady_clock::now();
  if (world->rank() == 0) std::this_thread::sleep_for(kLateBy);
  world->idle_barrier();
  EXPECT_GE(std::chrono::steady_clock::now() - start, kLateBy) << "rank " << world->rank() << " left early";
}

// MPI_ERRORS_RETURN turns MPI failures into loom::Error naming the call; each case fails
// locally (or between one pair of ranks), so no rank is left in a collective. (A peer outside the
// group never reaches MPI: the front refuses it, see typed_collectives_test.cpp.)
TEST(MpiCollectives, MpiErrorsBecomeLoomErrors) {
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  const float x[3] = {1, 2, 3};
  float y[3] = {};
  try {
    world->send(x, 1, /*peer=*/1, /*tag=*/-5);
    ADD_FAILURE() << "sending with a negative tag did not throw";
  } catch (const Error& error) {
    EXPECT_THAT(error.what(), HasSubstr("MPI send (MPI_Send) failed"));
  }
  // Shorter than expected: legal MPI, but the two sides disagree on a shape.
  if (world->rank() == 0) world->send(x, 2, 1, 42);
  if (world->rank() == 1) {
    try {
      world->recv(y, 3, 0, 42);
      ADD_FAILURE() << "a short message did not throw";
    } catch (const Error& error) {
      EXPECT_THAT(error.what(), HasSubstr("got 2 f32 elements, expected 3"));
    }
  }
  // Longer than the buffer: MPI reports truncation.
  if (world->rank() == 2) world->send(x, 3, 3, 43);
  if (world->rank() == 3) {
    try {
      world->recv(y, 2, 2, 43);
      ADD_FAILURE() << "a truncated receive did not throw";
    } catch (const Error& error) {
      EXPECT_THAT(error.what(), HasSubstr("MPI recv (MPI_Recv) failed"));
    }
  }
  world->barrier();  // the communicator still works after returned errors
}

// ZeRO-1 reduces the gradients into each rank's own block of the gradient buffer: the in-place
// form, whole and chunked, gives the same block as a separate output buffer.
TEST(MpiCollectives, InPlaceReduceScatterFillsTheOwnBlock) {
  for (size_t max_count : {size_t(1) << 30, size_t(3)}) {
    mpi::MpiCommunicator comm(mpi::Comm::world(), max_count);
    const int r = comm.rank(), n = comm.size();
    constexpr size_t count = 10;
    std::vector<float> send(count * size_t(n));
    for (size_t i = 0; i < send.size(); ++i) send[i] = float(1000 * r) + float(i);
    std::vector<float> separate(count, -1), in_place = send;
    comm.reduce_scatter(send.data(), separate.data(), count, ReduceOp::average);
    comm.reduce_scatter(in_place.data(), in_place.data() + size_t(r) * count, count, ReduceOp::average);
    const std::vector<float> own(in_place.begin() + r * int(count), in_place.begin() + (r + 1) * int(count));
    EXPECT_THAT(own, ElementsAreArray(separate)) << "max_count " << max_count;
  }
}

// With at most 3 elements per MPI call, 10-element buffers take every chunked path: all-reduce
// and broadcast in pieces, all-gather as per-rank broadcasts, reduce-scatter as per-rank reduces.
TEST(MpiCollectives, ChunkedCallsMatchWholeOnes) {
  mpi::MpiCommunicator comm(mpi::Comm::world(), /*max_count=*/3);
  const int r = comm.rank(), n = comm.size();
  constexpr size_t count = 10;
  auto ramp = [](float base) {
    std::vector<float> v(count);
    for (size_t i = 0; i < count; ++i) v[i] = base + float(i);
    return v;
  };
  const float rank_sum = float(n * (n - 1) / 2);

  std::vector<float> reduced = ramp(float(100 * r));
  comm.all_reduce(reduced.data(), count, ReduceOp::sum);
  std::vector<float> want(count);
  for (size_t i = 0; i < count; ++i) want[i] = 100 * rank_sum + float(n * int(i));
  EXPECT_THAT(reduced, ElementsAreArray(want));

  std::vector<float> gathered(count * size_t(n), -1), gathered_want;
  const std::vector<float> mine = ramp(float(100 * r));
  comm.all_gather(mine.data(), gathered.data(), count);
  for (int q = 0; q < n; ++q) {
    const std::vector<float> theirs = ramp(float(100 * q));
    gathered_want.insert(gathered_want.end(), theirs.begin(), theirs.end());
  }
  EXPECT_THAT(gathered, ElementsAreArray(gathered_want));

  std::vector<float> send(count * size_t(n));
  for (size_t i = 0; i < send.size(); ++i) send[i] = float(1000 * r) + float(i);
  std::vector<float> block(count, -1);
  comm.reduce_scatter(send.data(), block.data(), count, ReduceOp::sum);
  for (size_t i = 0; i < count; ++i)
    want[i] = 1000 * rank_sum + float(n) * float(size_t(r) * count + i);
  EXPECT_THAT(block, ElementsAreArray(want));

  std::vector<float> broadcast = r == n - 1 ? ramp(7) : std::vector<float>(count, 0);
  comm.broadcast(broadcast.data(), count, n - 1);
  EXPECT_THAT(broadcast, ElementsAreArray(ramp(7)));

  std::vector<double> doubles(count, double(r));
  comm.all_reduce_sum(doubles.data(), count);
  EXPECT_THAT(doubles, ::testing::Each(double(rank_sum)));

  if (n % 2 == 0) {  // the even/odd ring ordering needs an even number of ranks
    const int prev = (r + n - 1) % n;
    EXPECT_THAT(ring_shift(comm, ramp(float(r)), 300), ElementsAreArray(ramp(float(prev))));
  }
  // Groups split from a chunked communicator chunk the same way.
  auto half = comm.split(r % 2, r);
  ASSERT_NE(half, nullptr);
  std::vector<float> ones(count, 1);
  half->all_reduce(ones.data(), count, ReduceOp::sum);
  EXPECT_THAT(ones, ::testing::Each(float(half->size())));
}

}  // namespace
}  // namespace loom::exec
