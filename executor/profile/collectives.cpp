// Collectives through the executor's Communicator, nccl-tests style: for each group of the first
// g ranks, all-reduce, all-gather, reduce-scatter and broadcast by message size, and send/recv
// between ranks 0 and 1; bytes counted as nccl-tests counts them (the whole array for all-gather
// and reduce-scatter), one table per collective and group size on rank 0. Buffers are fp32 on the
// kernels' device: host memory for MPI, the GPU's for NCCL.

#include "executor/profile/measure.hpp"
#include "executor/profile/random_tensors.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <string_view>

namespace loom::exec::profile {
namespace {

constexpr int kTag = 7;

// nccl-tests' bus bandwidth: the algorithm bandwidth times the share of the data each rank's
// link must carry, so that it compares with the link's own speed whatever the group size.
double bus_factor(std::string_view collective, int g) {
  if (collective == "all_reduce") return 2.0 * (g - 1) / g;
  if (collective == "all_gather" || collective == "reduce_scatter") return double(g - 1) / g;
  return 1.0;
}

// Every member's `mine`, rank after rank. Through all_reduce_sum, the one collective whose buffer
// is host memory on every backend: each rank fills its own slots of zeros.
std::vector<double> gathered(Communicator& group, std::initializer_list<double> mine) {
  const size_t n = mine.size();
  std::vector<double> all(n * size_t(group.size()), 0.0);
  std::copy(mine.begin(), mine.end(), all.begin() + std::ptrdiff_t(n * size_t(group.rank())));
  group.all_reduce_sum(all.data(), all.size());
  return all;
}

// Every member times its own calls; the collective's time is the slowest member's median. The
// members agree on the repeat count first (from the slowest warm-up): they must call equally
// often. `between` runs before each call, untimed. A device communicator's calls return once
// queued: the clock is read after Kernels::synchronize(), before each call (so that `between` is
// not timed) and after it.
Timing time_collective(Communicator& group, Kernels& kernels, const std::function<void()>& call,
                       const std::function<void()>& between, const TimingPolicy& policy) {
  double start = seconds_now();
  call();
  kernels.synchronize();
  const std::vector<double> warm_ups = gathered(group, {seconds_now() - start});
  const int repeats = planned_repeats(*std::max_element(warm_ups.begin(), warm_ups.end()), policy);
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    if (between) between();
    kernels.synchronize();
    start = seconds_now();
    call();
    kernels.synchronize();
    times.push_back(seconds_now() - start);
  }
  const Timing mine = summarize(std::move(times));
  const std::vector<double> all = gathered(group, {mine.median_s, mine.spread});
  size_t worst = 0;
  for (size_t r = 1; r < size_t(group.size()); ++r)
    if (all[2 * r] > all[2 * worst]) worst = r;
  return {all[2 * worst], all[2 * worst + 1]};
}

class CollectiveTables {
 public:
  CollectiveTables(Communicator& group, Kernels& kernels, const ProfileGrid& grid, Measured& measured)
      : group_(group), kernels_(kernels), grid_(grid), measured_(measured) {
    RandomTensors random(kernels, 1000 + uint32_t(group.rank()));
    send_ = random.uniform({grid.largest_message_bytes / 4});
    recv_ = random.uniform({grid.largest_message_bytes / 4});
  }

  void all_reduce() {
    // It sums in place: every member ends with the same sum, which the next call would multiply
    // by g; scaling it back between calls keeps the values finite over 50 repeats.
    const float inverse = 1.0f / float(group_.size());
    measure(
        "all_reduce", 1, [this](size_t n) { group_.all_reduce(send(), n, ReduceOp::sum); },
        [this, inverse](size_t n) {
          Tensor sent = send_.rows(0, int64_t(n));
          kernels_.scale(sent, inverse);
        });
  }
  void all_gather() {
    measure("all_gather", group_.size(),
            [this](size_t n) { group_.all_gather(send(), recv(), n); });
  }
  void reduce_scatter() {
    measure("reduce_scatter", group_.size(),
            [this](size_t n) { group_.reduce_scatter(send(), recv(), n, ReduceOp::sum); });
  }
  void broadcast() {
    measure("broadcast", 1, [this](size_t n) { group_.broadcast(send(), n, 0); });
  }
  // A ping-pong between the group's two ranks: half a round trip is one message's time.
  void send_recv() {
    const int peer = 1 - group_.rank();
    measure(
        "send_recv", 1,
        [this, peer](size_t n) {
          if (peer == 1) {
            group_.send(send(), n, peer, kTag);
            group_.recv(recv(), n, peer, kTag);
          } else {
            group_.recv(recv(), n, peer, kTag);
            group_.send(send(), n, peer, kTag);
          }
        },
        {}, 0.5);
  }

 private:
  using Call = std::function<void(size_t count)>;

  float* send() { return send_.data<float>(); }
  float* recv() { return recv_.data<float>(); }

  // `call(count)` runs the collective on `count` elements per rank, the array being `parts` ×
  // count; `between(count)`, when given, runs untimed before each call; `scale` turns a call's
  // time into the collective's.
  void measure(std::string_view collective, int parts, const Call& call, const Call& between = {},
               double scale = 1.0) {
    const int g = group_.size();
    const bool printing = group_.rank() == 0;
    if (printing) {
      constexpr std::string_view header = "#{:>11} {:>12} {:>6} {:>12} {:>9} {:>9} {:>7}\n";
      fmt::print("# {} on {} ranks (intra-node, {})\n", collective, g,
                 kernels_.device() == Device::cpu ? "MPI" : "NCCL");
      fmt::print(header, "size", "count", "type", "time", "algbw", "busbw", "spread");
      fmt::print(header, "(B)", "(elements)", "", "(us)", "(GB/s)", "(GB/s)", "(%)");
    }
    for (int64_t size = 1024; size <= grid_.largest_message_bytes; size *= 4) {
      // Whole elements per rank, as nccl-tests rounds.
      const size_t count = size_t(size / 4 / parts);
      const int64_t bytes = int64_t(count) * parts * 4;
      Timing t = time_collective(
          group_, kernels_, [&] { call(count); },
          between ? std::function<void()>([&] { between(count); }) : nullptr, grid_.timing);
      t.median_s *= scale;
      if (!printing) continue;
      measured_.add(core::CollectiveSample{.collective = std::string(collective),
                                           .level = "intra-node",
                                           .ranks = g,
                                           .bytes = bytes,
                                           .time_s = t.median_s},
                    t.spread);
      const double algbw = double(bytes) / t.median_s;
      fmt::print("{:>12} {:>12} {:>6} {:>12.1f} {:>9.3f} {:>9.3f} {:>7.0f}\n", bytes,
                 count * size_t(parts), "float", t.median_s * 1e6, algbw / 1e9,
                 algbw * bus_factor(collective, g) / 1e9, t.spread * 100);
    }
    if (printing) std::fflush(stdout);
  }

  Communicator& group_;
  Kernels& kernels_;
  const ProfileGrid& grid_;
  Measured& measured_;
  Tensor send_, recv_;
};

}  // namespace

void measure_collectives(Communicator& world, Kernels& kernels, const std::function<void()>& wait,
                         const ProfileGrid& grid, Measured& measured) {
  for (int g : collective_group_sizes(world.size())) {
    // Split is collective over world: every rank calls it; the first g ranks form the group.
    const std::unique_ptr<Communicator> group =
        world.split(world.rank() < g ? 0 : -1, world.rank());
    if (group) {
      CollectiveTables tables(*group, kernels, grid, measured);
      tables.all_reduce();
      tables.all_gather();
      tables.reduce_scatter();
      tables.broadcast();
      if (g == 2) tables.send_recv();
    }
    wait();  // ranks outside the group wait here, asleep, until its members are done
  }
}

}  // namespace loom::exec::profile
