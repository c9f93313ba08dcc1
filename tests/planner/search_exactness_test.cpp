// The pruned search is exact: on small and medium spaces it returns the very top 10 and Pareto
// front that simulating every plan gives — the planner's own exhaustive mode, and an independent
// brute force written here that simulates every fitting plan with sim::simulate.

#include "planner/search.hpp"
#include "planner_test_support.hpp"

#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "simulator/prediction.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace loom::plan {
namespace {

using namespace loom::plan::testing;

std::string describe(const RankedPlan& r) {
  return core::to_json(r.plan.parallel).dump() + " devices=" + std::to_string(r.plan.cluster.world_size()) +
         " step=" + std::to_string(r.prediction.step_time_s) + " peak=" + std::to_string(r.prediction.peak_memory_bytes);
}

void expect_same_plans(const std::vector<RankedPlan>& pruned, const std::vector<RankedPlan>& exhaustive,
                       const std::string& what) {
  ASSERT_EQ(pruned.size(), exhaustive.size()) << what;
  for (size_t i = 0; i < pruned.size(); ++i) {
    SCOPED_TRACE(what + " #" + std::to_string(i + 1) + "\n  pruned:     " + describe(pruned[i]) +
                 "\n  exhaustive: " + describe(exhaustive[i]));
    EXPECT_EQ(core::to_json(pruned[i].plan).dump(), core::to_json(exhaustive[i].plan).dump());
    EXPECT_EQ(pruned[i].prediction.step_time_s, exhaustive[i].prediction.step_time_s);
    EXPECT_EQ(pruned[i].prediction.peak_memory_bytes, exhaustive[i].prediction.peak_memory_bytes);
    EXPECT_EQ(pruned[i].cost_per_step, exhaustive[i].cost_per_step);
  }
}

// The ranking key of a reported plan under the request's objective; smaller is better.
double objective_value(const SearchRequest& request, const RankedPlan& r) {
  switch (request.objective) {
    case Objective::step_time: return r.prediction.step_time_s;
    case Objective::tokens_per_s: return -r.prediction.tokens_per_s;
    case Objective::cost: return r.prediction.step_time_s * double(r.plan.cluster.world_size());
    case Objective::memory: return double(r.prediction.peak_memory_bytes);
  }
  return 0;
}

core::ModelSpec six_layer_model() {
  core::ModelSpec model = core::find_model_preset("gpt2-124m").spec;
  model.name = "gpt2-124m, 6 layers";
  model.num_layers = 6;
  return model;
}

class SearchExactness : public ::testing::TestWithParam<Space> {};

TEST_P(SearchExactness, PrunedSearchGivesTheExhaustiveTopTenAndParetoFront) {
  const SearchRequest request = request_for(GetParam());
  const SearchOptions options = options_for(10, true);
  const SearchResult pruned = search(request, options);
  const SearchResult exhaustive = search_exhaustively(request, options);

  ASSERT_EQ(pruned.top.size(), std::min<size_t>(10, size_t(exhaustive.stats.fitting)));
  expect_same_plans(pruned.top, exhaustive.top, "top");
  expect_same_plans(pruned.pareto, exhaustive.pareto, "pareto");
  EXPECT_FALSE(pruned.pareto.empty());

  // The same space was searched, and the pruned one simulated no more plans than there are.
  EXPECT_EQ(pruned.stats.combinations, exhaustive.stats.combinations);
  EXPECT_EQ(pruned.stats.valid, exhaustive.stats.valid);
  EXPECT_EQ(pruned.stats.fitting, exhaustive.stats.fitting);
  EXPECT_EQ(pruned.rejects.total(), exhaustive.rejects.total());
  EXPECT_LE(pruned.stats.simulated, exhaustive.stats.simulated);

  // The reported predictions are in the order the objective ranks them.
  for (size_t i = 1; i < pruned.top.size(); ++i)
    EXPECT_LE(objective_value(request, pruned.top[i - 1]), objective_value(request, pruned.top[i]))
        << "top #" << i << " and #" << i + 1 << " are out of order: " << describe(pruned.top[i - 1]) << " vs "
        << describe(pruned.top[i]);
  // The front is ascending in memory and strictly descending in step time.
  for (size_t i = 1; i < pruned.pareto.size(); ++i) {
    EXPECT_LT(pruned.pareto[i - 1].prediction.peak_memory_bytes, pruned.pareto[i].prediction.peak_memory_bytes);
    EXPECT_GT(pruned.pareto[i - 1].prediction.step_time_s, pruned.pareto[i].prediction.step_time_s);
  }
  for (const RankedPlan& r : pruned.top) {
    EXPECT_TRUE(r.prediction.fits);
    EXPECT_NO_THROW(r.plan.validate());
    if (request.price_per_device_hour) {
      EXPECT_DOUBLE_EQ(r.cost_per_step,
                       *request.price_per_device_hour * double(r.plan.cluster.world_size()) * r.prediction.step_time_s /
                           3600.0);
    } else {
      EXPECT_EQ(r.cost_per_step, 0.0);
    }
  }
}

TEST_P(SearchExactness, ResultDoesNotDependOnTheThreadCount) {
  const SearchRequest request = request_for(GetParam());
  const SearchResult one = search(request, options_for(10, true, 1));
  const SearchResult three = search(request, options_for(10, true, 3));
  expect_same_plans(one.top, three.top, "top");
  expect_same_plans(one.pareto, three.pareto, "pareto");
}

INSTANTIATE_TEST_SUITE_P(
    SmallAndMediumSpaces, SearchExactness,
    ::testing::Values(Space{.label = "gpt2_124m_8dev_gbs64", .model = "gpt2-124m", .devices = 8, .global_batch = 64},
                      Space{.label = "gpt2_124m_16dev_gbs128", .model = "gpt2-124m", .devices = 16, .global_batch = 128},
                      Space{.label = "gpt3_1_3b_32dev_gbs256", .model = "gpt3-1.3b", .devices = 32, .global_batch = 256},
                      Space{.label = "llama2_7b_64dev_gbs256", .model = "llama2-7b", .devices = 64, .global_batch = 256},
                      Space{.label = "llama3_8b_64dev_gbs128", .model = "llama3-8b", .devices = 64, .global_batch = 128},
                      Space{.label = "gpt3_175b_64dev_gbs64", .model = "gpt3-175b", .devices = 64, .global_batch = 64},
                      Space{.label = "gpt2_350m_16dev_fewer_devices",
                            .model = "gpt2-350m",
                            .devices = 16,
                            .global_batch = 64,
                            .allow_fewer_devices = true},
                      Space{.label = "gpt2_350m_16dev_cost_fewer_devices",
                            .model = "gpt2-350m",
                            .devices = 16,
                            .global_batch = 128,
                            .objective = Objective::cost,
                            .price = 2.5,
                            .allow_fewer_devices = true},
                      Space{.label = "gpt3_1_3b_32dev_cost",
                            .model = "gpt3-1.3b",
                            .devices = 32,
                            .global_batch = 256,
                            .objective = Objective::cost,
                            .price = 1.0},
                      Space{.label = "gpt3_1_3b_32dev_memory",
                            .model = "gpt3-1.3b",
                            .devices = 32,
                            .global_batch = 256,
                            .objective = Objective::memory},
                      Space{.label = "gpt2_124m_16dev_tokens_per_s",
                            .model = "gpt2-124m",
                            .devices = 16,
                            .global_batch = 64,
                            .objective = Objective::tokens_per_s,
                            .allow_fewer_devices = true},
                      Space{.label = "gpt3_1_3b_32dev_flash",
                            .model = "gpt3-1.3b",
                            .devices = 32,
                            .global_batch = 256,
                            .attention_backend = core::AttentionBackend::flash},
                      Space{.label = "gpt2_124m_16dev_cross_node_tp",
                            .model = "gpt2-124m",
                            .devices = 16,
                            .global_batch = 64,
                            .allow_cross_node_tp = true},
                      // Uneven splits are searched in every space above; here every split of six
                      // layers over 2, 3 and 6 stages is (few enough to try them all).
                      Space{.label = "six_layers_every_split",
                            .model = "gpt2-124m",
                            .devices = 8,
                            .global_batch = 48,
                            .custom_model = six_layer_model()},
                      Space{.label = "gpt2_124m_mixed_a100_h100",
                            .model = "gpt2-124m",
                            .global_batch = 32,
                            .groups = {{1, 4, "a100-80gb-dgx"}, {1, 4, "h100-80gb-dgx"}}},
                      Space{.label = "llama3_8b_mixed_h100_a100",
                            .model = "llama3-8b",
                            .global_batch = 64,
                            .groups = {{1, 8, "h100-80gb-dgx"}, {2, 8, "a100-80gb-dgx"}}}),
    [](const ::testing::TestParamInfo<Space>& info) { return info.param.label; });

// An oracle that shares nothing with the search but the simulator: simulate every valid plan,
// keep those that fit, sort by step time, and compute the Pareto front of (peak memory, step
// time) by definition — the points no other plan matches or beats on both axes.
struct Point {
  int64_t memory = 0;
  double time = 0;
  bool operator==(const Point&) const = default;
};

// Step time, or for the cost objective device-seconds per step; smaller is better.
double key_of(const SearchRequest& request, double step_time_s, int64_t devices) {
  return request.objective == Objective::cost ? step_time_s * double(devices) : step_time_s;
}

TEST(SearchOracle, TopTenAndParetoFrontMatchSimulatingEveryPlan) {
  for (const Space& space :
       {Space{.label = "gpt2-124m/8", .model = "gpt2-124m", .devices = 8, .global_batch = 64},
        Space{.label = "gpt3-175b/64", .model = "gpt3-175b", .devices = 64, .global_batch = 64},
        Space{.label = "gpt2-124m/16 fewer devices",
              .model = "gpt2-124m",
              .devices = 16,
              .global_batch = 64,
              .allow_fewer_devices = true},
        Space{.label = "gpt2-124m/16 fewer devices, cost",
              .model = "gpt2-124m",
              .devices = 16,
              .global_batch = 64,
              .objective = Objective::cost,
              .price = 3.0,
              .allow_fewer_devices = true},
        Space{.label = "gpt2-124m on 4 A100 then 4 H100",
              .model = "gpt2-124m",
              .global_batch = 32,
              .groups = {{1, 4, "a100-80gb-dgx"}, {1, 4, "h100-80gb-dgx"}}}}) {
    SCOPED_TRACE(space.label);
    const SearchRequest request = request_for(space);
    // The search tries both orders of a mixed cluster's two groups: so does the oracle.
    std::vector<SearchRequest> orders = {request};
    if (request.groups.size() == 2) {
      SearchRequest swapped = request;
      std::swap(swapped.groups[0], swapped.groups[1]);
      std::swap(swapped.group_profiles[0], swapped.group_profiles[1]);
      swapped.profile_name = swapped.groups[0].profile;
      swapped.profile = swapped.group_profiles[0];
      orders.push_back(swapped);
    }
    sim::SimulationOptions options;
    options.record_timeline = false;
    std::vector<Point> points;
    std::vector<double> keys;
    for (const SearchRequest& ordered : orders) {
      RejectCounts rejects;
      int64_t combinations = 0;
      for (const Candidate& c : enumerate_candidates(ordered, rejects, combinations)) {
        const core::Plan plan = make_plan(c, ordered);
        const sim::Prediction p = ordered.groups.empty() ? sim::simulate(plan, ordered.profile, options)
                                                         : sim::simulate(plan, ordered.group_profiles, options);
        if (!p.fits) continue;
        points.push_back({p.peak_memory_bytes, p.step_time_s});
        keys.push_back(key_of(ordered, p.step_time_s, c.devices));
      }
    }
    ASSERT_FALSE(points.empty());
    std::sort(keys.begin(), keys.end());
    keys.resize(std::min<size_t>(10, keys.size()));

    std::vector<Point> front;
    for (const Point& p : points) {
      const bool dominated = std::any_of(points.begin(), points.end(), [&](const Point& q) {
        return q.memory <= p.memory && q.time <= p.time && !(q == p);
      });
      if (!dominated && std::find(front.begin(), front.end(), p) == front.end()) front.push_back(p);
    }
    std::sort(front.begin(), front.end(), [](const Point& a, const Point& b) { return a.memory < b.memory; });

    const SearchResult result = search(request, options_for(10, true));
    EXPECT_EQ(result.stats.fitting, int64_t(points.size()));
    std::vector<double> found_keys;
    for (const RankedPlan& r : result.top)
      found_keys.push_back(key_of(request, r.prediction.step_time_s, r.plan.cluster.world_size()));
    EXPECT_EQ(found_keys, keys);
    std::vector<Point> found_front;
    for (const RankedPlan& r : result.pareto) found_front.push_back({r.prediction.peak_memory_bytes, r.prediction.step_time_s});
    ASSERT_EQ(found_front.size(), front.size());
    for (size_t i = 0; i < front.size(); ++i) {
      EXPECT_EQ(found_front[i].memory, front[i].memory) << "front #" << i;
      EXPECT_EQ(found_front[i].time, front[i].time) << "front #" << i;
    }
  }
}

TEST(SearchOracle, TopZeroAndTopLargerThanTheSpace) {
  const SearchRequest request = request_for({.label = "gpt2", .model = "gpt2-124m", .devices = 8, .global_batch = 64});
  EXPECT_TRUE(search(request, options_for(0)).top.empty());
  const SearchResult all = search(request, options_for(100000));
  EXPECT_EQ(int64_t(all.top.size()), all.stats.fitting);
  const SearchResult all_exhaustive = search_exhaustively(request, options_for(100000));
  expect_same_plans(all.top, all_exhaustive.top, "every plan");
}

TEST(SearchProgress, ReportedFromTheCallingThreadRisingToOne) {
  const SearchRequest request =
      request_for({.label = "gpt3-1.3b", .model = "gpt3-1.3b", .devices = 32, .global_batch = 256});
  std::vector<double> fractions;
  std::vector<std::thread::id> threads;
  SearchOptions options = options_for(10, true, 2);
  options.progress = [&](double fraction) {
    fractions.push_back(fraction);
    threads.push_back(std::this_thread::get_id());
  };
  const SearchResult result = search(request, options);
  ASSERT_FALSE(result.top.empty());
  ASSERT_FALSE(fractions.empty());
  EXPECT_EQ(fractions.back(), 1.0);
  for (size_t i = 0; i < fractions.size(); ++i) {
    EXPECT_GE(fractions[i], 0.0);
    EXPECT_LE(fractions[i], 1.0);
    if (i > 0) {
      EXPECT_GE(fractions[i], fractions[i - 1]) << "progress went back at call " << i;
    }
    EXPECT_EQ(threads[i], std::this_thread::get_id()) << "progress must come from the searching thread";
  }
}

TEST(SearchProgress, NoParetoFrontUnlessAskedFor) {
  const SearchRequest request = request_for({.label = "gpt2", .model = "gpt2-124m", .devices = 8, .global_batch = 64});
  const SearchResult result = search(request, options_for(5));
  EXPECT_EQ(result.top.size(), 5u);
  EXPECT_TRUE(result.pareto.empty());
}

}  // namespace
}  // namespace loom::plan

namespace loom::plan {
namespace {

using namespace loom::plan::testing;

// The desktop app's Cancel: the search stops at the next check and says so, whether the
// request comes before the first plan is scored or in the middle of the simulations.
TEST(SearchCancel, StopsWithCancelledWhenAsked) {
  const SearchRequest request = request_for({"gpt3-1.3b on 64", "gpt3-1.3b", 64, 512});
  for (const int asks_before_cancel : {0, 3}) {
    SearchOptions options = options_for(10, true, 2);
    std::atomic<int> asked{0};
    options.cancelled = [&] { return asked++ >= asks_before_cancel; };
    EXPECT_THROW(search(request, options), Cancelled) << "cancelled after " << asks_before_cancel << " checks";
    EXPECT_GT(asked.load(), asks_before_cancel);
  }
  SearchOptions never = options_for(10, false, 2);
  never.cancelled = [] { return false; };
  EXPECT_FALSE(search(request, never).top.empty());
}

}  // namespace
}  // namespace loom::plan
