// The MPI communicator in the element types beside f32: max over ranks in every type, bf16
// reduced in fp32 and rounded once to nearest even, f64, i32 and bf16 moved bit for bit (whole
// and in chunks of 3 elements), and the front's refusals, each with its message.

#include "core/error.hpp"
#include "executor/bfloat16.hpp"
#include "executor/comm/mpi_communicator.hpp"
#include "tests/executor/mpi/mpi_test_support.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

namespace loom::exec {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

template <typename T>
constexpr ElementType type_of();
template <>
constexpr ElementType type_of<float>() {
  return ElementType::f32;
}
template <>
constexpr ElementType type_of<double>() {
  return ElementType::f64;
}
template <>
constexpr ElementType type_of<int32_t>() {
  return ElementType::i32;
}
template <>
constexpr ElementType type_of<uint16_t>() {
  return ElementType::bf16;
}

// bf16 bits of values that bf16 holds exactly (the tests' inputs and expectations).
std::vector<uint16_t> bf16(std::initializer_list<float> values) {
  std::vector<uint16_t> bits;
  for (float v : values) {
    bits.push_back(float_to_bf16_bits(v));
    EXPECT_EQ(bf16_bits_to_float(bits.back()), v) << "not a bf16 value: the test is wrong";
  }
  return bits;
}

std::vector<float> widened(const std::vector<uint16_t>& bits) {
  std::vector<float> values;
  for (uint16_t b : bits) values.push_back(bf16_bits_to_float(b));
  return values;
}

// Whole calls, and every chunked path (at most 3 elements per MPI call).
std::vector<size_t> chunk_limits() {
  return {size_t(1) << 30, size_t(3)};
}

// Each element peaks at another rank: the last, the first (negatives), the odd ones, the last.
TEST(MpiTypedCollectives, MaxOverRanksInEveryElementType) {
  for (size_t max_count : chunk_limits()) {
    mpi::MpiCommunicator comm(mpi::Comm::world(), max_count);
    const int r = comm.rank(), n = comm.size(), top = n - 1;
    const float odd = n > 1 ? 50 : -50;

    std::vector<float> f32 = {float(r) + 0.5f, -float(r) - 1, r % 2 ? 50.f : -50.f, 2.f * float(r)};
    comm.all_reduce(f32.data(), f32.size(), ElementType::f32, ReduceOp::max);
    EXPECT_THAT(f32, ElementsAre(float(top) + 0.5f, -1, odd, 2.f * float(top)))
        << "max_count " << max_count;

    // Beyond fp32: 1e300, and the tiny negatives' order.
    std::vector<double> f64 = {1e300 * (r + 1), -1e-300 * (r + 1), r % 2 ? 50.0 : -50.0, 0.25 * r};
    comm.all_reduce(f64.data(), f64.size(), ElementType::f64, ReduceOp::max);
    EXPECT_THAT(f64, ElementsAre(1e300 * n, -1e-300, odd, 0.25 * top)) << "max_count " << max_count;

    // 300000007 has no fp32 twin: a float detour would show.
    constexpr int32_t lowest = std::numeric_limits<int32_t>::min();
    std::vector<int32_t> i32 = {100000000 * r + 7, -r - 1, r % 2 ? 50 : -50, lowest + r};
    comm.all_reduce(i32.data(), i32.size(), ElementType::i32, ReduceOp::max);
    EXPECT_THAT(i32, ElementsAre(100000000 * top + 7, -1, int32_t(odd), lowest + top))
        << "max_count " << max_count;

    std::vector<uint16_t> b16 =
        bf16({float(r) + 0.5f, -float(r) - 1, r % 2 ? 50.f : -50.f, 2.f * float(r)});
    comm.all_reduce(b16.data(), b16.size(), ElementType::bf16, ReduceOp::max);
    EXPECT_THAT(widened(b16), ElementsAre(float(top) + 0.5f, -1, odd, 2.f * float(top)))
        << "max_count " << max_count;
  }
}

// Max through reduce-scatter and the non-blocking forms: rank q's block of element i is the
// largest over ranks, the same as an all-reduce's.
template <typename T>
void expect_started_max_equals_blocking(mpi::MpiCommunicator& comm, std::vector<T> values) {
  const ElementType type = type_of<T>();
  const int r = comm.rank(), n = comm.size();
  const size_t count = values.size() / size_t(n);
  std::vector<T> blocking = values;
  comm.all_reduce(blocking.data(), blocking.size(), type, ReduceOp::max);

  std::vector<T> started = values;
  comm.start_all_reduce(started.data(), started.size(), type, ReduceOp::max)->wait();
  EXPECT_THAT(started, ElementsAreArray(blocking)) << to_string(type);

  std::vector<T> block(count);
  comm.reduce_scatter(values.data(), block.data(), count, type, ReduceOp::max);
  const std::vector<T> want(blocking.begin() + long(size_t(r) * count),
                            blocking.begin() + long(size_t(r + 1) * count));
  EXPECT_THAT(block, ElementsAreArray(want)) << to_string(type);

  // Unequal blocks, one of them empty.
  std::vector<size_t> counts(size_t(n), 0);
  for (int q = 0; q < n; ++q) counts[size_t(q)] = q == 1 ? 0 : size_t(q + 1);
  const size_t total = std::accumulate(counts.begin(), counts.end(), size_t(0));
  std::vector<T> scattered(values.begin(), values.begin() + long(total)), reduced = scattered;
  comm.all_reduce(reduced.data(), reduced.size(), type, ReduceOp::max);
  comm.start_reduce_scatter(scattered.data(), counts, type, ReduceOp::max)->wait();
  const size_t offset = std::accumulate(counts.begin(), counts.begin() + r, size_t(0));
  for (size_t i = offset; i < offset + counts[size_t(r)]; ++i)
    EXPECT_EQ(scattered[i], reduced[i]) << to_string(type) << " element " << i;
}

TEST(MpiTypedCollectives, MaxThroughReduceScatterAndTheStartedForms) {
  for (size_t max_count : chunk_limits()) {
    mpi::MpiCommunicator comm(mpi::Comm::world(), max_count);
    const int r = comm.rank(), n = comm.size();
    const size_t length = 4 * size_t(n) + size_t(n * (n + 1) / 2);  // the blocks of either test
    std::vector<float> f32(length);
    std::vector<double> f64(length);
    std::vector<int32_t> i32(length);
    std::vector<float> bf16_values(length);
    for (size_t i = 0; i < length; ++i) {
      // Peaks at rank (i mod n): each element's maximum comes from another rank.
      const int lead = int(i % size_t(n)) == r ? 1 : 0;
      f32[i] = float(i) + 0.5f * float(lead) - float(r);
      f64[i] = (double(i) + 0.5 * lead - r) * 1e200;
      i32[i] = int32_t(i) * 1000 + 500 * lead - r;
      bf16_values[i] = float(i % 64) + 0.5f * float(lead) - float(r);
    }
    std::vector<uint16_t> b16;
    for (float v : bf16_values) b16.push_back(float_to_bf16_bits(v));
    expect_started_max_equals_blocking(comm, f32);
    expect_started_max_equals_blocking(comm, f64);
    expect_started_max_equals_blocking(comm, i32);
    expect_started_max_equals_blocking(comm, b16);
  }
}

// Values, sums and means that bf16 holds exactly come out exactly, in every form.
TEST(MpiTypedCollectives, Bf16SumAndAverageAreExactOnBf16Values) {
  LOOM_REQUIRE_RANKS(4);
  for (size_t max_count : chunk_limits()) {
    mpi::MpiCommunicator comm(mpi::Comm::world(), max_count);
    const float k = float(comm.rank() + 1);  // 1..4: sums 10k, means 2.5k
    const std::vector<uint16_t> input =
        bf16({k, 0.5f * k, -2 * k, 0, 3 * k, 12 * k, 0.25f * k, -k});
    const std::vector<float> sums = {10, 5, -20, 0, 30, 120, 2.5f, -10};
    const std::vector<float> means = {2.5f, 1.25f, -5, 0, 7.5f, 30, 0.625f, -2.5f};

    std::vector<uint16_t> sum = input, mean = input;
    comm.all_reduce(sum.data(), sum.size(), ElementType::bf16, ReduceOp::sum);
    comm.all_reduce(mean.data(), mean.size(), ElementType::bf16, ReduceOp::average);
    EXPECT_THAT(widened(sum), ElementsAreArray(sums)) << "max_count " << max_count;
    EXPECT_THAT(widened(mean), ElementsAreArray(means)) << "max_count " << max_count;

    std::vector<uint16_t> started_sum = input, started_mean = input;
    comm.start_all_reduce(started_sum.data(), started_sum.size(), ElementType::bf16, ReduceOp::sum)
        ->wait();
    comm.start_all_reduce(started_mean.data(), started_mean.size(), ElementType::bf16,
                          ReduceOp::average)
        ->wait();
    EXPECT_THAT(widened(started_sum), ElementsAreArray(sums)) << "max_count " << max_count;
    EXPECT_THAT(widened(started_mean), ElementsAreArray(means)) << "max_count " << max_count;

    // Blocks of 2: rank r keeps elements 2r and 2r+1, in a separate buffer and in place.
    const int r = comm.rank();
    std::vector<uint16_t> block(2), in_place = input;
    comm.reduce_scatter(input.data(), block.data(), 2, ElementType::bf16, ReduceOp::average);
    comm.reduce_scatter(in_place.data(), in_place.data() + 2 * r, 2, ElementType::bf16,
                        ReduceOp::average);
    EXPECT_THAT(widened(block), ElementsAre(means[size_t(2 * r)], means[size_t(2 * r + 1)]));
    EXPECT_THAT(widened({in_place[size_t(2 * r)], in_place[size_t(2 * r + 1)]}),
                ElementsAreArray(widened(block)));

    // Unequal blocks 3, 0, 2, 3 through the started reduce-scatter.
    const std::vector<size_t> counts = {3, 0, 2, 3};
    const size_t offsets[] = {0, 3, 3, 5};
    std::vector<uint16_t> scattered = input;
    comm.start_reduce_scatter(scattered.data(), counts, ElementType::bf16, ReduceOp::sum)->wait();
    for (size_t i = offsets[r]; i < offsets[r] + counts[size_t(r)]; ++i)
      EXPECT_EQ(bf16_bits_to_float(scattered[i]), sums[i])
          << "element " << i << ", max_count " << max_count;
  }
}

// The sum is taken in fp32 and rounded to bf16 once, to nearest, ties to even: 4 + 3·2⁻⁶ lies
// halfway between the bf16 neighbours 4 + 2⁻⁵ (odd) and 4 + 2⁻⁴ (even), and 4 + 2⁻⁶ halfway
// between 4 (even) and 4 + 2⁻⁵. Truncation would give 4 + 2⁻⁵ and 4; rounding halves away from
// zero 4 + 2⁻⁴ and 4 + 2⁻⁵.
TEST(MpiTypedCollectives, Bf16SumsRoundOnceToNearestEven) {
  LOOM_REQUIRE_RANKS(4);
  auto world = mpi_world();
  const bool first = world->rank() == 0;
  std::vector<uint16_t> data = bf16({first ? 1 + 3.f / 64 : 1, first ? 1 + 1.f / 64 : 1});
  world->all_reduce(data.data(), data.size(), ElementType::bf16, ReduceOp::sum);
  EXPECT_THAT(widened(data), ElementsAre(4 + 1.f / 16, 4));
  data = bf16({first ? 1 + 3.f / 64 : 1, first ? 1 + 1.f / 64 : 1});
  world->start_all_reduce(data.data(), data.size(), ElementType::bf16, ReduceOp::sum)->wait();
  EXPECT_THAT(widened(data), ElementsAre(4 + 1.f / 16, 4));
}

// Data movement carries the bits as they are: a signalling NaN's payload survives (a detour
// through fp32 would quieten it to 0x7fc1), and so does an i32 beyond fp32's integers.
TEST(MpiTypedCollectives, GatherAndBroadcastMoveF64I32AndBf16BitForBit) {
  for (size_t max_count : chunk_limits()) {
    mpi::MpiCommunicator comm(mpi::Comm::world(), max_count);
    const int r = comm.rank(), n = comm.size();
    auto f64_of = [](int q) {
      return std::vector<double>{q + 1e-300, 1e300 * q, -0.1 * q, 3, 1.0 / 3};
    };
    auto i32_of = [](int q) {
      return std::vector<int32_t>{q, -q, 16777217 + q, std::numeric_limits<int32_t>::max() - q};
    };
    auto bf16_of = [](int q) {
      return std::vector<uint16_t>{uint16_t(0x7f81), uint16_t(0x3f80 + q), uint16_t(0x8000)};
    };

    std::vector<double> f64_all(5 * size_t(n)), f64_want;
    std::vector<int32_t> i32_all(4 * size_t(n)), i32_want;
    std::vector<uint16_t> bf16_all(3 * size_t(n)), bf16_want;
    comm.all_gather(f64_of(r).data(), f64_all.data(), 5, ElementType::f64);
    comm.all_gather(i32_of(r).data(), i32_all.data(), 4, ElementType::i32);
    comm.all_gather(bf16_of(r).data(), bf16_all.data(), 3, ElementType::bf16);
    for (int q = 0; q < n; ++q) {
      for (double v : f64_of(q)) f64_want.push_back(v);
      for (int32_t v : i32_of(q)) i32_want.push_back(v);
      for (uint16_t v : bf16_of(q)) bf16_want.push_back(v);
    }
    EXPECT_THAT(f64_all, ElementsAreArray(f64_want)) << "max_count " << max_count;
    EXPECT_THAT(i32_all, ElementsAreArray(i32_want)) << "max_count " << max_count;
    EXPECT_THAT(bf16_all, ElementsAreArray(bf16_want)) << "max_count " << max_count;

    // The started gather, with unequal blocks (rank q holds q + 1 elements).
    std::vector<size_t> counts(static_cast<size_t>(n));
    std::iota(counts.begin(), counts.end(), size_t(1));
    const size_t total = std::accumulate(counts.begin(), counts.end(), size_t(0));
    const size_t offset = std::accumulate(counts.begin(), counts.begin() + r, size_t(0));
    std::vector<int32_t> gathered(total, -1), gathered_want(total);
    std::iota(gathered_want.begin(), gathered_want.end(), 16777217);
    std::copy(gathered_want.begin() + long(offset),
              gathered_want.begin() + long(offset + counts[size_t(r)]),
              gathered.begin() + long(offset));
    comm.start_all_gather(gathered.data(), counts, ElementType::i32)->wait();
    EXPECT_THAT(gathered, ElementsAreArray(gathered_want)) << "max_count " << max_count;

    const int root = n - 1;
    std::vector<double> f64 = r == root ? f64_of(7) : std::vector<double>(5, 0);
    std::vector<int32_t> i32 = r == root ? i32_of(7) : std::vector<int32_t>(4, 0);
    std::vector<uint16_t> b16 = r == root ? bf16_of(7) : std::vector<uint16_t>(3, 0);
    comm.broadcast(f64.data(), f64.size(), ElementType::f64, root);
    comm.broadcast(i32.data(), i32.size(), ElementType::i32, root);
    comm.broadcast(b16.data(), b16.size(), ElementType::bf16, root);
    EXPECT_THAT(f64, ElementsAreArray(f64_of(7))) << "max_count " << max_count;
    EXPECT_THAT(i32, ElementsAreArray(i32_of(7))) << "max_count " << max_count;
    EXPECT_THAT(b16, ElementsAreArray(bf16_of(7))) << "max_count " << max_count;
  }
}

// Around the ring, even ranks sending first (see collectives_test.cpp's ring_shift).
template <typename T>
std::vector<T> ring_shift(Communicator& comm, const std::vector<T>& out, int tag) {
  const int r = comm.rank(), n = comm.size();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  std::vector<T> in(out.size());
  if (r % 2 == 0) comm.send(out.data(), out.size(), type_of<T>(), next, tag);
  comm.recv(in.data(), in.size(), type_of<T>(), prev, tag);
  if (r % 2 == 1) comm.send(out.data(), out.size(), type_of<T>(), next, tag);
  return in;
}

TEST(MpiTypedCollectives, SendAndReceiveF64I32AndBf16) {
  LOOM_REQUIRE_RANKS(4);
  for (size_t max_count : chunk_limits()) {
    mpi::MpiCommunicator comm(mpi::Comm::world(), max_count);
    const int r = comm.rank(), prev = (r + 3) % 4;
    EXPECT_THAT(ring_shift(comm, std::vector<double>{1e300 * r, r + 1e-300, 0.1}, 11),
                ElementsAre(1e300 * prev, prev + 1e-300, 0.1));
    EXPECT_THAT(ring_shift(comm, std::vector<int32_t>{16777217 + r, -r, 0, 1, 2}, 12),
                ElementsAre(16777217 + prev, -prev, 0, 1, 2));
    EXPECT_THAT(ring_shift(comm, std::vector<uint16_t>{uint16_t(0x7f81), uint16_t(0x3f80 + r)}, 13),
                ElementsAre(uint16_t(0x7f81), uint16_t(0x3f80 + prev)));
  }
  // A receive that expects more than was sent names the type.
  auto world = mpi_world();
  const int32_t two[2] = {1, 2};
  int32_t three[3] = {};
  if (world->rank() == 0) world->send(two, 2, ElementType::i32, 1, 44);
  if (world->rank() == 1) {
    try {
      world->recv(three, 3, ElementType::i32, 0, 44);
      ADD_FAILURE() << "a short message did not throw";
    } catch (const Error& error) {
      EXPECT_THAT(error.what(), HasSubstr("got 2 i32 elements, expected 3"));
    }
  }
  world->barrier();
}

// Expects `call` to throw loom::Error with `message` in its text.
template <typename Call>
void expect_refused(Call&& call, const std::string& message) {
  try {
    call();
    ADD_FAILURE() << "not refused; expected: " << message;
  } catch (const Error& error) {
    EXPECT_THAT(error.what(), HasSubstr(message));
  }
}

// Every refusal is local, taken alike on every rank, before anything is sent: the ranks stay in
// step, and no buffer is touched.
TEST(MpiTypedCollectives, TheFrontRefusesWhatNoBackendCanDo) {
  auto world = mpi_world();
  const int n = world->size();
  const std::string ranks = fmt::format("of this communicator of {} ranks (0 to {})", n, n - 1);
  std::vector<int32_t> counts(4 * size_t(n), 7);
  std::vector<float> floats(4 * size_t(n), 7);
  const std::vector<size_t> one_per_rank(size_t(n), 1), one_too_many(size_t(n) + 1, 1);

  const std::string no_mean =
      "average of i32 is not supported (an integer mean would be truncated); use sum";
  expect_refused([&] { world->all_reduce(counts.data(), 4, ElementType::i32, ReduceOp::average); },
                 "all_reduce: " + no_mean);
  expect_refused(
      [&] {
        world->reduce_scatter(counts.data(), counts.data(), 1, ElementType::i32, ReduceOp::average);
      },
      "reduce_scatter: " + no_mean);
  expect_refused(
      [&] { world->start_all_reduce(counts.data(), 4, ElementType::i32, ReduceOp::average); },
      "start_all_reduce: " + no_mean);
  expect_refused(
      [&] {
        world->start_reduce_scatter(counts.data(), one_per_rank, ElementType::i32,
                                    ReduceOp::average);
      },
      "start_reduce_scatter: " + no_mean);

  expect_refused([&] { world->send(floats.data(), 1, n, 0); },
                 fmt::format("send: peer {} is not a rank {}", n, ranks));
  expect_refused([&] { world->recv(floats.data(), 1, -1, 0); },
                 "recv: peer -1 is not a rank " + ranks);
  expect_refused([&] { world->broadcast(floats.data(), 1, n); },
                 fmt::format("broadcast: root {} is not a rank {}", n, ranks));

  expect_refused([&] { world->start_reduce_scatter(floats.data(), one_too_many, ReduceOp::sum); },
                 fmt::format("start_reduce_scatter: {} block counts for a communicator of {} ranks",
                             n + 1, n));
  expect_refused([&] { world->start_all_gather(floats.data(), std::span<const size_t>()); },
                 fmt::format("start_all_gather: 0 block counts for a communicator of {} ranks", n));

  EXPECT_THAT(counts, ::testing::Each(7));
  EXPECT_THAT(floats, ::testing::Each(7.0f));
  // sum and max of i32 pass the front; the ranks are still in step.
  int32_t one = 1;
  world->all_reduce(&one, 1, ElementType::i32, ReduceOp::sum);
  EXPECT_EQ(one, n);
  world->all_reduce(&one, 1, ElementType::i32, ReduceOp::max);
  EXPECT_EQ(one, n);
}

}  // namespace
}  // namespace loom::exec
