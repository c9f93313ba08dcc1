// The search's evaluator says exactly what the simulator says, plan by plan, with uneven layer
// splits and on mixed clusters (issue 23): its memory check is sim::simulate's (each stage against
// its own group's devices), its step time sim::simulate's to the last bit, and its bound never
// above it. Candidates are scored in a scrambled order, so that no cache (layer costs per group,
// schedules) can carry one plan's split or placement over to another.

#include "planner/evaluator.hpp"
#include "planner_test_support.hpp"

#include "simulator/prediction.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <random>
#include <vector>

namespace loom::plan {
namespace {

using namespace loom::plan::testing;

struct Checked {
  int64_t plans = 0, fitting = 0, uneven = 0, misses = 0;
};

Checked check_space(const Space& space, size_t most_plans, const std::function<void(SearchRequest&)>& edit = {}) {
  SearchRequest request = request_for(space);
  if (edit) edit(request);
  RejectCounts rejects;
  int64_t combinations = 0;
  std::vector<Candidate> candidates = enumerate_candidates(request, rejects, combinations);
  std::shuffle(candidates.begin(), candidates.end(), std::mt19937(23));
  if (candidates.size() > most_plans) candidates.resize(most_plans);
  const std::vector<core::Profile> profiles =
      request.groups.empty() ? std::vector<core::Profile>{request.profile} : request.group_profiles;
  sim::SimulationOptions options;
  options.record_timeline = false;
  Evaluator evaluator(request);
  Checked checked;
  int64_t misses = 0;
  for (const Candidate& c : candidates) {
    const core::Plan plan = make_plan(c, request);
    SCOPED_TRACE(fmt::format("{} {}", space.label, core::to_json(plan.parallel).dump()));
    const sim::Prediction prediction = sim::simulate(plan, profiles, options);
    Scored scored;
    evaluator.score(c, scored);
    EXPECT_TRUE(scored.countable);
    EXPECT_EQ(scored.peak_memory_bytes, prediction.peak_memory_bytes);
    EXPECT_EQ(scored.fits, prediction.fits);
    ++checked.plans;
    checked.uneven += plan.even_layer_split() ? 0 : 1;
    if (!scored.fits) {
      ++misses;
      continue;
    }
    ++checked.fitting;
    EXPECT_LE(scored.bound_s, prediction.step_time_s);
    EXPECT_EQ(evaluator.simulate(c), prediction.step_time_s);
  }
  checked.misses = misses;
  return checked;
}

TEST(Evaluator, UnevenSplitsScoreAsTheSimulatorSays) {
  const Checked c = check_space(Space{.label = "gpt3-1.3b on 16", .model = "gpt3-1.3b", .devices = 16,
                                      .global_batch = 64},
                                600);
  EXPECT_GT(c.uneven, 50) << "the space should hold uneven splits";
  EXPECT_GT(c.fitting, 50);
}

TEST(Evaluator, MixedClustersScoreAsTheSimulatorSays) {
  const Checked c = check_space(Space{.label = "llama2-7b on A100 + H100",
                                      .model = "llama2-7b",
                                      .global_batch = 64,
                                      .groups = {{1, 8, "a100-80gb-dgx"}, {1, 8, "h100-80gb-dgx"}}},
                                600);
  EXPECT_GT(c.uneven, 20);
  EXPECT_GT(c.fitting, 20);
}

// One group of 40 GiB devices: plans that fit the 80 GiB group but not the other are told apart.
TEST(Evaluator, EachGroupsMemoryIsCheckedAsTheSimulatorChecksIt) {
  const Checked c = check_space(Space{.label = "gpt3-6.7b on A100 40 GiB + 80 GiB",
                                      .model = "gpt3-6.7b",
                                      .global_batch = 64,
                                      .groups = {{1, 8, "a100-80gb-dgx"}, {1, 8, "a100-80gb-dgx"}}},
                                600, [](SearchRequest& r) {
                                  r.group_profiles[1].name = "a100-40gb-test";
                                  r.group_profiles[1].device.memory_bytes = int64_t(40) << 30;
                                });
  EXPECT_GT(c.misses, 10);
  EXPECT_GT(c.fitting, 10);
}

}  // namespace
}  // namespace loom::plan
