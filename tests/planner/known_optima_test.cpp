// Spaces whose answer can be reasoned out: a small model with plenty of batch on one fast node
// wants pure data parallelism; a model whose weights alone overflow tp 8 needs pipelining; a
// model nothing can hold gives no plan but the nearest misses. And the reject reasons name the
// rule that bites (96 heads do not split over tp 5 or 7).

#include "planner/search.hpp"
#include "planner_test_support.hpp"

#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "simulator/memory_model.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <string>

namespace loom::plan {
namespace {

using namespace loom::plan::testing;

TEST(KnownOptimum, SmallModelWithPlentyOfBatchOnOneNodeIsPureDataParallel) {
  const SearchRequest request = request_for("gpt2-124m", 8, 256);
  const SearchResult result = search(request, options_for(10, true));
  ASSERT_FALSE(result.top.empty());
  const core::ParallelPlan& best = result.top.front().plan.parallel;
  EXPECT_EQ(best.tensor_parallel, 1);
  EXPECT_EQ(best.pipeline_parallel, 1);
  EXPECT_EQ(best.data_parallel, 8);
  EXPECT_EQ(best.schedule, core::Schedule::one_f_one_b);
  EXPECT_FALSE(best.sequence_parallel);
  EXPECT_EQ(best.recompute, core::Recompute::none) << "recomputing a model that fits only costs time";
  EXPECT_EQ(result.top.front().plan.cluster.world_size(), 8);
}

TEST(KnownOptimum, ModelTooBigForEightWayTensorParallelismNeedsPipelining) {
  for (const char* model : {"gpt3-175b", "megatron-145.6b"}) {
    SCOPED_TRACE(model);
    const SearchRequest request = request_for(model, 64, 64);
    const SearchResult result = search(request, options_for(10));
    ASSERT_EQ(result.top.size(), 10u);
    for (const RankedPlan& r : result.top) {
      EXPECT_GT(r.plan.parallel.pipeline_parallel, 1) << core::to_json(r.plan.parallel).dump();
      EXPECT_TRUE(r.prediction.fits);
      EXPECT_LE(r.prediction.peak_memory_bytes, request.profile.device.memory_bytes);
    }
    // Not just the top: no plan without pipelining fits at all.
    RejectCounts rejects;
    int64_t combinations = 0;
    int64_t without_pipeline = 0;
    for (const Candidate& c : enumerate_candidates(request, rejects, combinations)) {
      if (c.pipeline_parallel != 1) continue;
      ++without_pipeline;
      EXPECT_GT(sim::peak_memory_bytes(make_plan(c, request)), request.profile.device.memory_bytes);
    }
    EXPECT_GT(without_pipeline, 0);
  }
}

TEST(KnownOptimum, NothingFitsGivesNoPlanButTheNearestMissesByMemory) {
  const SearchRequest request = request_for("megatron-1t", 8, 64);
  const SearchResult result = search(request, options_for(10, true));
  EXPECT_TRUE(result.top.empty());
  EXPECT_TRUE(result.pareto.empty());
  EXPECT_EQ(result.stats.fitting, 0);
  EXPECT_EQ(result.rejects.does_not_fit, result.stats.valid);
  ASSERT_EQ(result.nearest_misses.size(), 5u);
  const int64_t capacity = request.profile.device.memory_bytes;
  for (size_t i = 0; i < result.nearest_misses.size(); ++i) {
    const NearMiss& miss = result.nearest_misses[i];
    SCOPED_TRACE(core::to_json(miss.plan.parallel).dump());
    EXPECT_NO_THROW(miss.plan.validate());
    EXPECT_GT(miss.lacking_bytes, 0);
    EXPECT_EQ(miss.lacking_bytes, miss.peak_memory_bytes - capacity);
    EXPECT_EQ(miss.peak_memory_bytes, sim::peak_memory_bytes(miss.plan));
    if (i > 0) {
      EXPECT_LE(result.nearest_misses[i - 1].peak_memory_bytes, miss.peak_memory_bytes);
    }
  }
  // They are the nearest: no valid plan needs less memory than the first of them.
  RejectCounts rejects;
  int64_t combinations = 0;
  int64_t least = std::numeric_limits<int64_t>::max();
  for (const Candidate& c : enumerate_candidates(request, rejects, combinations))
    least = std::min(least, sim::peak_memory_bytes(make_plan(c, request)));
  EXPECT_EQ(result.nearest_misses.front().peak_memory_bytes, least);

  // The exhaustive search agrees.
  const SearchResult exhaustive = search_exhaustively(request, options_for(10, true));
  EXPECT_TRUE(exhaustive.top.empty());
  ASSERT_EQ(exhaustive.nearest_misses.size(), result.nearest_misses.size());
  for (size_t i = 0; i < result.nearest_misses.size(); ++i)
    EXPECT_EQ(exhaustive.nearest_misses[i].plan, result.nearest_misses[i].plan);
}

TEST(KnownOptimum, NearestMissesWhenSomePlansFitAreStillMissesByMemory) {
  const SearchRequest request = request_for("gpt3-175b", 64, 64);
  const SearchResult result = search(request, options_for(3));
  EXPECT_FALSE(result.top.empty());
  EXPECT_GT(result.rejects.does_not_fit, 0);
  // search.hpp says the misses come "when none fits"; the search also lists them otherwise (the
  // CLI prints them only when nothing fits). Either way they must be misses, nearest first.
  EXPECT_LE(result.nearest_misses.size(), 5u);
  for (size_t i = 0; i < result.nearest_misses.size(); ++i) {
    const NearMiss& miss = result.nearest_misses[i];
    EXPECT_GT(miss.lacking_bytes, 0);
    EXPECT_EQ(miss.lacking_bytes, miss.peak_memory_bytes - request.profile.device.memory_bytes);
    if (i > 0) {
      EXPECT_LE(result.nearest_misses[i - 1].peak_memory_bytes, miss.peak_memory_bytes);
    }
  }
}

TEST(RejectReasons, HeadsNotDivisibleByTpAreCountedAndReasonsAreSortedDescending) {
  const SearchRequest request = request_for("gpt3-175b", 64, 64);
  const SearchResult result = search(request, options_for(1));
  const auto reasons = result.rejects.reasons(request.profile.device.memory_bytes);
  ASSERT_FALSE(reasons.empty());
  const auto heads = std::find_if(reasons.begin(), reasons.end(),
                                  [](const auto& r) { return r.first == "num-attention-heads % tp != 0"; });
  ASSERT_NE(heads, reasons.end());
  EXPECT_GT(heads->second, 0);
  EXPECT_EQ(heads->second, result.rejects.by_rule[size_t(core::PlanRule::heads_divisible_by_tp)]);
  for (size_t i = 1; i < reasons.size(); ++i)
    EXPECT_GE(reasons[i - 1].second, reasons[i].second) << reasons[i - 1].first << " before " << reasons[i].first;
  int64_t sum = 0;
  for (const auto& [reason, count] : reasons) {
    EXPECT_GT(count, 0) << reason;
    sum += count;
  }
  EXPECT_EQ(sum, result.rejects.total());
  const auto memory = std::find_if(reasons.begin(), reasons.end(),
                                   [](const auto& r) { return r.first == "does not fit in 80 GiB"; });
  ASSERT_NE(memory, reasons.end());
  EXPECT_EQ(memory->second, result.rejects.does_not_fit);
}

TEST(RejectReasons, ReasonsOfSummedCountsAreTheSumsOfReasons) {
  RejectCounts a, b;
  a.by_rule[size_t(core::PlanRule::heads_divisible_by_tp)] = 3;
  a.does_not_fit = 5;
  b.by_rule[size_t(core::PlanRule::heads_divisible_by_tp)] = 4;
  b.gpipe_without_pipeline = 2;
  b.distributed_optimizer_without_dp = 9;
  a += b;
  EXPECT_EQ(a.total(), 3 + 5 + 4 + 2 + 9);
  EXPECT_THAT(a.reasons(int64_t(40) << 30),
              ::testing::ElementsAre(::testing::Pair("distributed optimizer with dp = 1 (same as without)", 9),
                                     ::testing::Pair("num-attention-heads % tp != 0", 7),
                                     ::testing::Pair("does not fit in 40 GiB", 5),
                                     ::testing::Pair("gpipe with pp = 1 (same as 1f1b)", 2)));
}

TEST(SearchRequestValidation, ImpossibleRequestsAreInvalidInput) {
  const SearchRequest good = request_for("gpt2-124m", 8, 64);
  EXPECT_NO_THROW(good.validate());
  auto expect_invalid = [&](auto change, const std::string& fragment) {
    SearchRequest r = good;
    change(r);
    try {
      (void)search(r);
      ADD_FAILURE() << "expected InvalidInput mentioning '" << fragment << "'";
    } catch (const InvalidInput& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(fragment));
    }
  };
  expect_invalid([](SearchRequest& r) { r.devices = 12; }, "--devices-per-node");
  expect_invalid([](SearchRequest& r) { r.devices = 0; }, "--devices");
  expect_invalid([](SearchRequest& r) { r.training.global_batch_size = 0; }, "global-batch-size");
  expect_invalid([](SearchRequest& r) { r.objective = Objective::cost; }, "--price-per-device-hour");
  expect_invalid([](SearchRequest& r) { r.max_micro_batch_size = 0; }, "--max-micro-batch-size");
  EXPECT_THROW(parse_objective("fastest"), InvalidInput);
  for (Objective o : {Objective::step_time, Objective::tokens_per_s, Objective::cost, Objective::memory})
    EXPECT_EQ(parse_objective(to_string(o)), o);
}

}  // namespace
}  // namespace loom::plan
