// DataParallelBuckets against a fake two-rank data-parallel group in one process, on a fake clock:
// a bucket's reduction starts the moment its last gradient is reported final and not before, over
// exactly the bucket's range (all-reduce, or ZeRO-1's reduce-scatter with the shard blocks);
// grad_sync waits for every bucket; the parameter gathers start after the update and a forward
// waits only for the buckets it reads; and the waiting is dp_comm, nested in the backward,
// forward or optimizer scope around it, whose own time stays theirs.

#include "executor/engine/data_parallel_buckets.hpp"
#include "executor/model/gpt2_parameters.hpp"

#include "core/error.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

namespace loom::exec {
namespace {

// The CPU kernels the stores are finalized with (parameter values live on the CPU).
Kernels& dp_bucket_test_kernels() {
  static std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  return *kernels;
}


using ::testing::ElementsAreArray;

struct FakeClock {
  double now_s = 0;
  TimerStack::Clock clock() {
    return [this] { return now_s; };
  }
};

// A started collective that the fake clock says takes one second to wait for.
class OneSecondWait final : public PendingCollective {
 public:
  OneSecondWait(FakeClock& time, int& waits) : time_(time), waits_(waits) {}
  bool test() override { return done_; }
  void wait() override {
    if (done_) return;
    time_.now_s += 1;
    ++waits_;
    done_ = true;
  }

 private:
  FakeClock& time_;
  int& waits_;
  bool done_ = false;
};

struct StartedCall {
  std::string kind;  // "all_reduce", "reduce_scatter", "all_gather"
  const void* data = nullptr;
  size_t count = 0;
  std::vector<size_t> blocks;
  ElementType type = ElementType::f32;
  ReduceOp op = ReduceOp::sum;
};

// Rank 0 of `size` ranks; blocking calls take no time and leave the data alone.
class FakeGroup final : public Communicator {
 public:
  FakeGroup(FakeClock& time, int size) : time_(time), size_(size) {}
  int rank() const override { return 0; }
  int size() const override { return size_; }
  void barrier() override { ++barriers; }
  void idle_barrier() override { ++blocking_calls; }
  void all_reduce_sum(double*, size_t) override { ++blocking_calls; }
  std::unique_ptr<Communicator> split(int, int) override { return nullptr; }

  std::vector<StartedCall> started;
  int waits = 0;
  int blocking_calls = 0;
  int barriers = 0;  // the timed wait for the slowest rank (dp_wait) before the reduction finishes

 protected:
  void run_all_reduce(void*, size_t, ElementType, ReduceOp) override { ++blocking_calls; }
  void run_all_gather(const void*, void*, size_t, ElementType) override { ++blocking_calls; }
  void run_reduce_scatter(const void*, void*, size_t, ElementType, ReduceOp) override { ++blocking_calls; }
  void run_broadcast(void*, size_t, ElementType, int) override { ++blocking_calls; }
  void run_send(const void*, size_t, ElementType, int, int) override { ++blocking_calls; }
  void run_recv(void*, size_t, ElementType, int, int) override { ++blocking_calls; }
  std::unique_ptr<PendingCollective> run_start_all_reduce(void* data, size_t count, ElementType type,
                                                          ReduceOp op) override {
    started.push_back({"all_reduce", data, count, {}, type, op});
    return std::make_unique<OneSecondWait>(time_, waits);
  }
  std::unique_ptr<PendingCollective> run_start_reduce_scatter(void* data, std::span<const size_t> blocks,
                                                              ElementType type, ReduceOp op) override {
    started.push_back({"reduce_scatter", data, std::accumulate(blocks.begin(), blocks.end(), size_t(0)),
                       std::vector<size_t>(blocks.begin(), blocks.end()), type, op});
    return std::make_unique<OneSecondWait>(time_, waits);
  }
  std::unique_ptr<PendingCollective> run_start_all_gather(void* data, std::span<const size_t> blocks,
                                                          ElementType type) override {
    started.push_back({"all_gather", data, std::accumulate(blocks.begin(), blocks.end(), size_t(0)),
                       std::vector<size_t>(blocks.begin(), blocks.end()), type, ReduceOp::sum});
    return std::make_unique<OneSecondWait>(time_, waits);
  }

 private:
  FakeClock& time_;
  int size_;
};

core::Plan small_plan(bool distributed_optimizer, int64_t bucket_parameters) {
  core::Plan plan;
  core::ModelSpec& m = plan.model;
  m.name = "data-parallel-buckets-test";
  m.num_layers = 2;
  m.hidden_size = 8;
  m.num_attention_heads = 2;
  m.ffn_hidden_size = 32;
  m.padded_vocab_size = 64;
  m.seq_length = 4;
  plan.parallel.data_parallel = 2;
  plan.parallel.distributed_optimizer = distributed_optimizer;
  plan.parallel.overlap_grad_reduce = true;
  plan.parallel.overlap_param_gather = distributed_optimizer;
  plan.parallel.ddp_bucket_size = bucket_parameters;
  return plan;
}

// One rank of the data-parallel pair, whole model on one stage.
struct Fixture {
  // 2,304 parameters, 872 per layer: 300 per bucket makes 6 buckets; 600 makes 3, one of them
  // cut by the boundary of the two ZeRO-1 shards.
  explicit Fixture(bool distributed_optimizer, int64_t bucket_parameters = 300)
      : plan(small_plan(distributed_optimizer, bucket_parameters)), groups(fake_groups(plan, time)),
        data(static_cast<FakeGroup*>(groups.data.get())) {
    declare_gpt2_parameters(store, plan.model, {0, 1}, true, true);
    store.finalize(0, 1, 7, /*pad_to=*/2, dp_bucket_test_kernels(), ElementType::f32);
  }

  static ProcessGroups fake_groups(const core::Plan& plan, FakeClock& time) {
    const core::RankLayout layout = core::RankLayout::of(plan.parallel);
    return ProcessGroups{layout, layout.coords(0), std::make_unique<FakeGroup>(time, 1),
                         std::make_unique<FakeGroup>(time, 2), std::make_unique<FakeGroup>(time, 1), nullptr};
  }

  // Offsets of a started call's buffer in the flat gradients or values.
  int64_t grad_offset(const StartedCall& c) {
    return static_cast<const float*>(c.data) - store.flat_grads().data<float>();
  }
  int64_t value_offset(const StartedCall& c) {
    return static_cast<const float*>(c.data) - store.flat_values().data<float>();
  }

  core::Plan plan;
  FakeClock time;
  TimerStack timers{time.clock()};
  ParameterStore store;
  ProcessGroups groups;
  FakeGroup* data;
};

std::vector<Parameter*> in_backward_order(ParameterStore& store) {
  std::vector<Parameter*> out;
  for (auto p = store.all().rbegin(); p != store.all().rend(); ++p) out.push_back(&*p);
  return out;
}

double seconds(const TimerStack& timers, Category c) { return timers[c]; }

TEST(DataParallelBuckets, EachBucketStartsWhenItsLastGradientIsFinal) {
  Fixture f(false);
  DataParallelBuckets buckets(f.plan, f.store, std::vector<int64_t>(f.store.all().size(), 0), f.groups, f.timers);
  ASSERT_GE(buckets.buckets().size(), 4u);
  {
    ScopedTimer backward(f.timers, Category::backward);
    size_t complete = 0;  // buckets whose every parameter has been reported
    std::vector<size_t> reported;
    for (Parameter* p : in_backward_order(f.store)) {
      f.time.now_s += 2;  // the backward's compute of this parameter
      Parameter* one[] = {p};
      buckets.gradients_final(one);
      reported.push_back(size_t(p - f.store.all().data()));
      while (complete < buckets.buckets().size() &&
             std::all_of(buckets.buckets()[complete].parameters.begin(), buckets.buckets()[complete].parameters.end(),
                         [&](size_t i) { return std::count(reported.begin(), reported.end(), i) == 1; }))
        ++complete;
      ASSERT_EQ(f.data->started.size(), complete) << "after " << p->name;
    }
  }
  EXPECT_EQ(f.data->waits, 0) << "nothing waits during the backward";
  {
    ScopedTimer grad_sync(f.timers, Category::dp_comm);
    buckets.finish_gradient_sync();
  }
  const size_t n = buckets.buckets().size();
  EXPECT_EQ(f.data->waits, int(n));
  // Every bucket reduced once, over exactly its range, averaged over the replicas.
  for (size_t b = 0; b < n; ++b) {
    const StartedCall& c = f.data->started[b];
    EXPECT_EQ(c.kind, "all_reduce");
    EXPECT_EQ(c.op, ReduceOp::average);
    EXPECT_EQ(f.grad_offset(c), buckets.buckets()[b].begin);
    EXPECT_EQ(int64_t(c.count), buckets.buckets()[b].size());
  }
  const double parameters = double(f.store.all().size());
  EXPECT_DOUBLE_EQ(seconds(f.timers, Category::backward), 2 * parameters);
  EXPECT_DOUBLE_EQ(seconds(f.timers, Category::dp_comm), double(n));
  EXPECT_EQ(f.data->blocking_calls, 0);
  // One barrier at grad_sync, once every bucket has started: the wait for the slowest data rank,
  // timed apart from the transfers.
  EXPECT_EQ(f.data->barriers, 1);

  // The next step starts again from nothing reported.
  for (Parameter* p : in_backward_order(f.store)) {
    Parameter* one[] = {p};
    buckets.gradients_final(one);
  }
  EXPECT_EQ(f.data->started.size(), 2 * n);
  buckets.finish_gradient_sync();
}

TEST(DataParallelBuckets, GradSyncRefusesABucketNeverCompleted) {
  Fixture f(false);
  DataParallelBuckets buckets(f.plan, f.store, std::vector<int64_t>(f.store.all().size(), 0), f.groups, f.timers);
  std::vector<Parameter*> all_but_first = in_backward_order(f.store);
  all_but_first.pop_back();
  buckets.gradients_final(all_but_first);
  EXPECT_THROW(buckets.finish_gradient_sync(), Error);
  std::vector<Parameter*> again = {all_but_first.front()};
  EXPECT_THROW(buckets.gradients_final(again), Error) << "a gradient reported final twice in one step";
}

TEST(DataParallelBuckets, ZeroReduceScattersShardBlocksAndGathersBeforeTheForwardReads) {
  Fixture f(true, 600);
  DataParallelBuckets buckets(f.plan, f.store, std::vector<int64_t>(f.store.all().size(), 0), f.groups, f.timers);
  const size_t n = buckets.buckets().size();
  const int64_t shard = f.store.padded_size() / 2;
  buckets.gradients_final(in_backward_order(f.store));
  buckets.finish_gradient_sync();
  ASSERT_EQ(f.data->started.size(), n);
  bool some_bucket_straddles_the_shards = false;
  for (size_t b = 0; b < n; ++b) {
    const GradientBucket& bucket = buckets.buckets()[b];
    const StartedCall& c = f.data->started[b];
    EXPECT_EQ(c.kind, "reduce_scatter");
    EXPECT_EQ(f.grad_offset(c), bucket.begin);
    const size_t first = size_t(std::clamp<int64_t>(shard - bucket.begin, 0, bucket.size()));
    EXPECT_THAT(c.blocks, ElementsAreArray({first, size_t(bucket.size()) - first})) << "bucket " << b;
    some_bucket_straddles_the_shards |= first > 0 && first < size_t(bucket.size());
  }
  EXPECT_TRUE(some_bucket_straddles_the_shards) << "the test should cover a bucket cut by the shard boundary";

  f.data->started.clear();
  const double waited_before = seconds(f.timers, Category::dp_comm);
  {
    ScopedTimer optimizer(f.timers, Category::optimizer);
    f.time.now_s += 3;
    buckets.start_parameter_gathers();
  }
  ASSERT_EQ(f.data->started.size(), n);
  for (size_t i = 0; i < n; ++i) {  // in the forward's order: the backward's last bucket first
    const GradientBucket& bucket = buckets.buckets()[n - 1 - i];
    EXPECT_EQ(f.data->started[i].kind, "all_gather");
    EXPECT_EQ(f.value_offset(f.data->started[i]), bucket.begin);
    EXPECT_EQ(int64_t(f.data->started[i].count), bucket.size());
  }
  // The forward reads the embedding first: only the buckets holding it are waited for.
  const int waits_before = f.data->waits;
  {
    ScopedTimer forward(f.timers, Category::forward);
    f.time.now_s += 5;
    std::vector<Parameter*> embedding = {&f.store["wte.weight"], &f.store["wpe.weight"]};
    buckets.wait_for_parameters(embedding);
    buckets.wait_for_parameters(embedding);  // already there: no second wait
  }
  std::vector<size_t> holding;
  for (const char* name : {"wte.weight", "wpe.weight"})
    for (size_t b = 0; b < n; ++b) {
      const auto& members = buckets.buckets()[b].parameters;
      if (std::count(members.begin(), members.end(), size_t(&f.store[name] - f.store.all().data())))
        holding.push_back(b);
    }
  std::sort(holding.begin(), holding.end());
  holding.erase(std::unique(holding.begin(), holding.end()), holding.end());
  EXPECT_EQ(f.data->waits - waits_before, int(holding.size()));
  EXPECT_DOUBLE_EQ(seconds(f.timers, Category::forward), 5);
  EXPECT_DOUBLE_EQ(seconds(f.timers, Category::optimizer), 3);
  EXPECT_DOUBLE_EQ(seconds(f.timers, Category::dp_comm) - waited_before, double(holding.size()));
  buckets.finish_parameter_gathers();
  EXPECT_EQ(f.data->waits - waits_before, int(n));
}

}  // namespace
}  // namespace loom::exec
