// Uneven layer splits and mixed clusters in the search (issue 23): the compact split forms
// rebuild the counts they stand for; a heavy output layer pushes layers off the last stage; on a
// mixed cluster the faster group takes more layers and every group holds whole stages.

#include "planner/layer_split.hpp"
#include "planner/search.hpp"
#include "planner_test_support.hpp"

#include "core/model_presets.hpp"
#include "core/plan_json.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

namespace loom::plan {
namespace {

using namespace loom::plan::testing;

std::vector<int64_t> counts_of(const LayerSplit& split, int64_t layers, int64_t pp,
                               const std::vector<int64_t>& rank_groups = {}) {
  std::vector<int64_t> out;
  write_layer_split(split, layers, pp, rank_groups.empty() ? std::vector<int64_t>(size_t(pp), 0) : rank_groups, out);
  return out;
}

TEST(LayerSplit, CompositionsNumberEverySplitOnce) {
  for (const auto& [layers, stages] : {std::pair{5, 3}, std::pair{4, 4}, std::pair{7, 2}, std::pair{6, 5}}) {
    const std::optional<int64_t> count = split_count(layers, stages, 1000);
    ASSERT_TRUE(count);
    std::set<std::vector<int64_t>> seen;
    for (int64_t i = 0; i < *count; ++i) {
      const std::vector<int64_t> c =
          counts_of({SplitForm::composition, 1, int16_t(i), 0, {}}, layers, stages);
      ASSERT_EQ(int64_t(c.size()), stages);
      EXPECT_EQ(std::accumulate(c.begin(), c.end(), int64_t(0)), layers);
      for (size_t s = 1; s + 1 < c.size(); ++s) EXPECT_GE(c[s], 1);
      EXPECT_GE(c.front(), 0);
      EXPECT_GE(c.back(), 0);
      EXPECT_TRUE(seen.insert(c).second) << "split " << i << " twice";
    }
    // Every split there is: the ends from 0, the middle from 1, summing to the layers.
    int64_t all = 0;
    std::vector<int64_t> parts(size_t(stages));
    auto count_all = [&](auto&& self, int64_t at, int64_t left) -> void {
      if (at + 1 == stages) {
        ++all;
        return;
      }
      for (int64_t n = at == 0 ? 0 : 1; n <= left; ++n) self(self, at + 1, left - n);
    };
    count_all(count_all, 0, layers);
    EXPECT_EQ(int64_t(seen.size()), all) << layers << " over " << stages;
  }
  EXPECT_FALSE(split_count(96, 8, 1000));
  EXPECT_EQ(split_count(16, 2, 100), 17);
}

TEST(LayerSplit, EndsSpreadTheMiddleWithTheExtraLayersBesideTheLighterEnd) {
  EXPECT_EQ(counts_of({SplitForm::ends, 1, 5, 7, {}}, 30, 4), (std::vector<int64_t>{5, 9, 9, 7}));
  EXPECT_EQ(counts_of({SplitForm::ends, 1, 5, 7, {}}, 31, 4), (std::vector<int64_t>{5, 10, 9, 7}));
  EXPECT_EQ(counts_of({SplitForm::ends, 1, 8, 6, {}}, 31, 4), (std::vector<int64_t>{8, 8, 9, 6}));
  EXPECT_EQ(counts_of({SplitForm::ends, 1, 6, 6, {}}, 32, 5), (std::vector<int64_t>{6, 7, 6, 7, 6}));
  // Interleaved: pp 2 × v 2, virtual stage c·pp + r is chunk c of rank r.
  EXPECT_EQ(counts_of({SplitForm::ends, 2, 3, 2, {}}, 16, 2), (std::vector<int64_t>{3, 5, 6, 2}));
  // Mixed: ranks 0–1 on group 0, 2–3 on group 1; group 0's middle stage takes 4 of the 20.
  EXPECT_EQ(counts_of({SplitForm::ends, 1, 3, 7, {4}}, 20, 4, {0, 0, 1, 1}), (std::vector<int64_t>{3, 4, 6, 7}));
  EXPECT_TRUE(counts_of({}, 20, 4).empty()) << "the even form writes no split";
}

TEST(LayerSplit, RankGroupsFollowTheGroupsAlongThePipeline) {
  const std::vector<core::DeviceGroup> groups = {{1, 8, "a"}, {3, 8, "b"}};
  EXPECT_EQ(rank_groups_of(groups, 4, 8), (std::vector<int64_t>{0, 1, 1, 1}));
  EXPECT_EQ(rank_groups_of(groups, 2, 16), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(rank_groups_of({}, 3, 8), (std::vector<int64_t>{0, 0, 0}));
}

// A small model whose output layer costs about six transformer layers (a 64K vocabulary on
// hidden 768), with 3 heads so that no tensor parallelism splits it: on 2 devices with an odd
// batch (no data parallelism) the only plans are 2 pipeline stages.
core::ModelSpec model_with(int64_t vocabulary) {
  core::ModelSpec model = core::find_model_preset("gpt2-124m").spec;
  model.name = "synthetic";
  model.num_layers = 16;
  model.num_attention_heads = 3;
  model.vocab_size = vocabulary;
  model.seq_length = 1024;
  return model;
}

TEST(LayerSplitSearch, HeavyLastStageTakesFewerLayers) {
  const Space space{.label = "heavy loss", .model = "gpt2-124m", .devices = 2, .global_batch = 15,
                    .custom_model = model_with(65536)};
  SearchRequest request = request_for(space);
  request.devices_per_node = 2;
  const SearchResult uneven = search(request, options_for(5));
  request.search_layer_splits = false;
  const SearchResult even = search(request, options_for(5));
  ASSERT_FALSE(uneven.top.empty());
  ASSERT_FALSE(even.top.empty());
  const core::Plan& best = uneven.top.front().plan;
  ASSERT_EQ(best.parallel.pipeline_parallel, 2) << core::to_json(best.parallel).dump();
  const std::vector<int64_t> layers = best.pipeline_rank_layers();
  EXPECT_LT(layers.back(), layers.front()) << core::to_json(best.parallel).dump();
  EXPECT_FALSE(best.even_layer_split());
  EXPECT_LT(uneven.top.front().prediction.step_time_s, even.top.front().prediction.step_time_s);
  // Every split over the two stages was searched (17 of them): the best is exactly the best of those.
  EXPECT_GE(uneven.stats.valid, 17 * even.stats.valid / 2);
}

TEST(LayerSplitSearch, MixedClusterPutsMoreLayersOnTheFasterGroupAndWholeStagesOnEach) {
  // A100 first, H100 last: the light loss (8K vocabulary) hardly weighs on the last stage.
  const Space space{.label = "mixed", .model = "gpt2-124m", .global_batch = 16,
                    .groups = {{1, 2, "a100-80gb-dgx"}, {1, 2, "h100-80gb-dgx"}},
                    .custom_model = model_with(8192)};
  const SearchRequest request = request_for(space);
  const SearchResult result = search(request, options_for(10));
  ASSERT_FALSE(result.top.empty());
  EXPECT_GT(result.rejects.by_rule[size_t(core::PlanRule::device_group_straddles_stage)], 0)
      << "pure data parallelism over both groups is refused by the rule, and counted";
  for (const RankedPlan& r : result.top) {
    SCOPED_TRACE(core::to_json(r.plan.parallel).dump());
    EXPECT_NO_THROW(r.plan.validate());
    // The groups as given, in either order along the pipeline (both orders are searched).
    EXPECT_TRUE(std::is_permutation(r.plan.cluster.groups.begin(), r.plan.cluster.groups.end(),
                                    request.groups.begin(), request.groups.end()));
    const int64_t stage_ranks = r.plan.parallel.tensor_parallel * r.plan.parallel.data_parallel;
    for (const core::DeviceGroup& g : r.plan.cluster.groups) EXPECT_EQ(g.devices() % stage_ranks, 0);
  }
  const core::Plan& best = result.top.front().plan;
  SCOPED_TRACE(core::to_json(best.parallel).dump());
  const std::vector<int64_t> layers = best.pipeline_rank_layers(), groups = best.pipeline_rank_groups();
  double on[2] = {0, 0}, ranks[2] = {0, 0};  // [0]: A100 stages, [1]: H100 stages
  for (size_t r = 0; r < layers.size(); ++r) {
    const bool h100 = best.cluster.groups[size_t(groups[r])].profile == "h100-80gb-dgx";
    on[h100] += double(layers[r]);
    ranks[h100] += 1;
  }
  ASSERT_GT(ranks[0], 0);
  ASSERT_GT(ranks[1], 0);
  EXPECT_GT(on[1] / ranks[1], on[0] / ranks[0]) << "the H100 stages should hold more layers each";
}

// Which group takes the first stages is a choice too: given in either order, the search finds the
// same best plan; kept in the order given, it can only do as well or worse.
TEST(LayerSplitSearch, MixedClusterSearchesEveryOrderOfTheGroups) {
  // A heavy output layer (64K vocabulary): the last stage is best on the faster devices.
  Space space{.label = "mixed orders", .model = "gpt2-124m", .global_batch = 16,
              .groups = {{1, 2, "h100-80gb-dgx"}, {1, 2, "a100-80gb-dgx"}}, .custom_model = model_with(65536)};
  const SearchRequest h100_first = request_for(space);
  std::swap(space.groups[0], space.groups[1]);
  const SearchRequest a100_first = request_for(space);
  const SearchResult from_h100 = search(h100_first, options_for(5));
  const SearchResult from_a100 = search(a100_first, options_for(5));
  ASSERT_FALSE(from_h100.top.empty());
  ASSERT_FALSE(from_a100.top.empty());
  EXPECT_EQ(from_h100.top.front().prediction.step_time_s, from_a100.top.front().prediction.step_time_s);
  EXPECT_EQ(from_h100.top.front().plan, from_a100.top.front().plan);
  EXPECT_EQ(from_h100.stats.valid, from_a100.stats.valid);

  SearchRequest kept = h100_first;
  kept.search_group_orders = false;
  const SearchResult in_order = search(kept, options_for(5));
  ASSERT_FALSE(in_order.top.empty());
  for (const RankedPlan& r : in_order.top) EXPECT_EQ(r.plan.cluster.groups, kept.groups);
  EXPECT_GE(in_order.top.front().prediction.step_time_s, from_h100.top.front().prediction.step_time_s);
  EXPECT_LT(in_order.stats.valid, from_h100.stats.valid);

  // Alike groups give one order, not several: three groups of which two are the same kind.
  space.groups = {{1, 2, "a100-80gb-dgx"}, {1, 2, "h100-80gb-dgx"}, {1, 2, "a100-80gb-dgx"}};
  SearchRequest three = request_for(space);
  three.search_layer_splits = false;
  const SearchResult orders = search(three, options_for(3));
  three.search_group_orders = false;
  const SearchResult one = search(three, options_for(3));
  EXPECT_EQ(orders.stats.combinations, 3 * one.stats.combinations) << "3 distinct orders of A, H, A";
}

}  // namespace
}  // namespace loom::plan
