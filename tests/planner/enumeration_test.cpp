// The enumeration: every emitted candidate is a valid plan, none twice, every combination is
// accounted for (valid or rejected under one rule), and an independent brute force over the
// same knobs, asking only core::Plan::validate, finds exactly the same set of plans.

#include "planner/search.hpp"
#include "planner_test_support.hpp"
#include "planner/search_space.hpp"

#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "planner/layer_split.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace loom::plan {
namespace {

using namespace loom::plan::testing;

struct BruteForce {
  std::set<std::string> valid;  // plan JSON, after the planner's two duplicate skips
  int64_t distributed_optimizer_without_dp = 0;
  int64_t gpipe_without_pipeline = 0;
  int64_t overlap_without_dp = 0;
};

// Written from the rules as the issue states them, not from the planner's code: every device
// count the request allows, every tp (within a node unless cross-node tp is allowed), every pp up
// to the layers and the devices left, micro-batches in powers of two, each schedule (interleaved
// with every layers-per-virtual-stage value, letting validate() reject the ones that do not
// divide), the binary/ternary knobs and the three overlap switches; Plan::validate decides.
BruteForce brute_force(const SearchRequest& r) {
  BruteForce out;
  const int64_t node = r.devices_per_node;
  const int64_t layers = r.model.num_layers;
  // A preset gives vocab-size, which each tp pads by Megatron's rule (a multiple of
  // --make-vocab-size-divisible-by 128 × tp) without being told.
  EXPECT_TRUE(r.model.vocab_size && !r.model.padded_vocab_size);
  std::vector<int64_t> device_counts;
  for (int64_t d = 1; d <= r.devices; ++d)
    if (d == r.devices || (r.allow_fewer_devices && ((d <= node && node % d == 0) || d % node == 0)))
      device_counts.push_back(d);
  for (int64_t devices : device_counts) {
    const int64_t max_tp = r.allow_cross_node_tp ? devices : std::min(devices, node);
    for (int64_t tp = 1; tp <= max_tp; ++tp)
      for (int64_t pp = 1; pp <= std::min(layers, devices / tp); ++pp)
        for (int64_t mbs = 1; mbs <= r.max_micro_batch_size; mbs *= 2) {
          std::vector<std::pair<core::Schedule, int64_t>> schedules = {{core::Schedule::gpipe, 0},
                                                                       {core::Schedule::one_f_one_b, 0}};
          for (int64_t per_virtual = 1; per_virtual <= std::max<int64_t>(1, layers / pp); ++per_virtual)
            schedules.push_back({core::Schedule::interleaved, per_virtual});
          for (const auto& [schedule, per_virtual] : schedules)
            for (core::Recompute recompute : {core::Recompute::none, core::Recompute::selective, core::Recompute::full})
              for (bool sp : {false, true})
                for (bool distributed : {false, true})
                  for (int overlaps = 0; overlaps < 8; ++overlaps) {
                  core::Plan plan;
                  plan.model = r.model;  // padded for each tp by Megatron's rule (see above)
                  plan.training = r.training;
                  plan.cluster.devices_per_node = std::min(node, devices);
                  plan.cluster.nodes = devices / plan.cluster.devices_per_node;
                  plan.cluster.profile = r.profile_name;
                  plan.cluster.price_per_device_hour = r.price_per_device_hour;
                  plan.parallel.tensor_parallel = tp;
                  plan.parallel.pipeline_parallel = pp;
                  plan.parallel.data_parallel = devices / (tp * pp);
                  plan.parallel.micro_batch_size = mbs;
                  plan.parallel.schedule = schedule;
                  if (per_virtual > 0) plan.parallel.layers_per_virtual_stage = per_virtual;
                  plan.parallel.recompute = recompute;
                  plan.parallel.sequence_parallel = sp;
                  plan.parallel.distributed_optimizer = distributed;
                  plan.parallel.overlap_grad_reduce = overlaps & 1;
                  plan.parallel.overlap_param_gather = overlaps & 2;
                  plan.parallel.tp_comm_overlap = overlaps & 4;
                  try {
                    plan.validate();
                  } catch (const loom::Error&) {
                    continue;
                  }
                  if (distributed && plan.parallel.data_parallel == 1) {
                    ++out.distributed_optimizer_without_dp;
                    continue;
                  }
                  if (plan.parallel.overlap_grad_reduce && plan.parallel.data_parallel == 1) {
                    ++out.overlap_without_dp;
                    continue;
                  }
                  if (schedule == core::Schedule::gpipe && pp == 1) {
                    ++out.gpipe_without_pipeline;
                    continue;
                  }
                  out.valid.insert(core::to_json(plan).dump());
                }
        }
  }
  return out;
}

class Enumeration : public ::testing::TestWithParam<Space> {};

TEST_P(Enumeration, EveryCandidateValidatesOnceAndEveryCombinationIsCounted) {
  // The brute force knows even splits only; uneven ones are checked below.
  Space space = GetParam();
  space.even_splits_only = true;
  const SearchRequest request = request_for(space);
  RejectCounts rejects;
  int64_t combinations = -1;
  const std::vector<Candidate> candidates = enumerate_candidates(request, rejects, combinations);
  ASSERT_FALSE(candidates.empty());

  std::set<std::string> plans;
  for (const Candidate& c : candidates) {
    const core::Plan plan = make_plan(c, request);
    const std::string json = core::to_json(plan).dump();
    EXPECT_NO_THROW(plan.validate()) << json;
    EXPECT_TRUE(plans.insert(json).second) << "duplicate: " << json;
    EXPECT_EQ(int64_t(c.tensor_parallel) * c.pipeline_parallel * c.data_parallel, plan.cluster.world_size()) << json;
    EXPECT_EQ(c.devices, plan.cluster.world_size()) << json;
    if (!request.allow_cross_node_tp) {
      EXPECT_LE(c.tensor_parallel, request.devices_per_node) << json;
    }
    if (!request.allow_fewer_devices) {
      EXPECT_EQ(plan.cluster.world_size(), request.devices) << json;
    }
    // The plan survives its own JSON: what `loom plan --out` writes, `loom run` reads back.
    EXPECT_EQ(core::plan_from_json(core::to_json(plan)), plan) << json;
  }

  // Everything examined is either a candidate or counted under exactly one reason.
  EXPECT_EQ(rejects.does_not_fit, 0) << "memory is judged by the search, not the enumeration";
  EXPECT_EQ(combinations, int64_t(candidates.size()) + rejects.total());
  int64_t by_rule = 0;
  for (int64_t n : rejects.by_rule) by_rule += n;
  EXPECT_EQ(combinations,
            int64_t(candidates.size()) + by_rule + rejects.distributed_optimizer_without_dp + rejects.gpipe_without_pipeline +
                rejects.overlap_without_dp);

  // The independent brute force finds the very same plans, and the same duplicates skipped.
  const BruteForce brute = brute_force(request);
  EXPECT_EQ(brute.valid.size(), candidates.size());
  EXPECT_EQ(brute.distributed_optimizer_without_dp, rejects.distributed_optimizer_without_dp);
  EXPECT_EQ(brute.gpipe_without_pipeline, rejects.gpipe_without_pipeline);
  EXPECT_EQ(brute.overlap_without_dp, rejects.overlap_without_dp);
  std::vector<std::string> only_planner, only_brute;
  std::set_difference(plans.begin(), plans.end(), brute.valid.begin(), brute.valid.end(), std::back_inserter(only_planner));
  std::set_difference(brute.valid.begin(), brute.valid.end(), plans.begin(), plans.end(), std::back_inserter(only_brute));
  EXPECT_TRUE(only_planner.empty()) << only_planner.size() << " plans only the planner emits, e.g. " << only_planner.front();
  EXPECT_TRUE(only_brute.empty()) << only_brute.size() << " valid plans the planner misses, e.g. " << only_brute.front();

  // The search reports the same accounting, with memory added.
  const SearchResult result = search(request, options_for(1));
  EXPECT_EQ(result.stats.combinations, combinations);
  EXPECT_EQ(result.stats.valid, int64_t(candidates.size()));
  EXPECT_EQ(result.stats.evaluated, result.stats.valid);
  EXPECT_EQ(result.stats.combinations, result.stats.valid + result.rejects.total() - result.rejects.does_not_fit);
  EXPECT_EQ(result.stats.valid, result.stats.fitting + result.rejects.does_not_fit);
  EXPECT_EQ(result.rejects.by_rule, rejects.by_rule);
}

INSTANTIATE_TEST_SUITE_P(
    Spaces, Enumeration,
    ::testing::Values(
        Space{.label = "gpt2_124m_8dev_gbs64", .model = "gpt2-124m", .devices = 8, .global_batch = 64},
        Space{.label = "gpt2_124m_16dev_gbs128", .model = "gpt2-124m", .devices = 16, .global_batch = 128},
        Space{.label = "gpt3_1_3b_32dev_gbs256", .model = "gpt3-1.3b", .devices = 32, .global_batch = 256},
        Space{.label = "llama3_8b_64dev_gbs128", .model = "llama3-8b", .devices = 64, .global_batch = 128},
        Space{.label = "llama2_70b_32dev_gbs96", .model = "llama2-70b", .devices = 32, .global_batch = 96},
        Space{.label = "gpt2_350m_16dev_fewer_devices",
              .model = "gpt2-350m",
              .devices = 16,
              .global_batch = 64,
              .allow_fewer_devices = true},
        Space{.label = "gpt2_124m_16dev_cross_node_tp",
              .model = "gpt2-124m",
              .devices = 16,
              .global_batch = 48,
              .allow_cross_node_tp = true},
        Space{.label = "gpt2_1_5b_8dev_odd_batch_mbs4",  // 25 heads: only tp 1 and 5 split them
              .model = "gpt2-1.5b",
              .devices = 8,
              .global_batch = 24,
              .max_micro_batch_size = 4}),
    [](const ::testing::TestParamInfo<Space>& info) { return info.param.label; });

TEST(Enumeration, GiantSpaceIsCountedInFullWithoutBuildingPlans) {
  // GPT-3 175B on 512 devices: only the counting identity, which needs no simulation.
  Space space{.label = "gpt3-175b/512", .model = "gpt3-175b", .devices = 512, .global_batch = 1536};
  const SearchRequest request = request_for(space);
  RejectCounts rejects;
  int64_t combinations = 0;
  const std::vector<Candidate> candidates = enumerate_candidates(request, rejects, combinations);
  EXPECT_GT(candidates.size(), 1000u);
  EXPECT_EQ(combinations, int64_t(candidates.size()) + rejects.total());
  for (const Candidate& c : candidates) {
    ASSERT_EQ(96 % c.tensor_parallel, 0);
    if (c.split.form == SplitForm::even) ASSERT_EQ(96 % c.pipeline_parallel, 0);
    else ASSERT_GE(c.pipeline_parallel, 2);
    ASSERT_EQ(int64_t(c.tensor_parallel) * c.pipeline_parallel * c.data_parallel, 512);
    ASSERT_EQ(1536 % (int64_t(c.micro_batch_size) * c.data_parallel), 0);
  }
}

// With uneven splits: every candidate still validates, once; every combination is counted; the
// even candidates are exactly those of the search without splits; and each uneven one differs
// from its even split only in the layers per virtual stage.
TEST_P(Enumeration, UnevenSplitsValidateOnceAndAddToTheEvenSpace) {
  const SearchRequest request = request_for(GetParam());
  Space even_space = GetParam();
  even_space.even_splits_only = true;
  RejectCounts rejects, even_rejects;
  int64_t combinations = 0, even_combinations = 0;
  const std::vector<Candidate> candidates = enumerate_candidates(request, rejects, combinations);
  const std::vector<Candidate> even = enumerate_candidates(request_for(even_space), even_rejects, even_combinations);
  EXPECT_EQ(combinations, int64_t(candidates.size()) + rejects.total());
  EXPECT_GT(combinations, even_combinations);

  std::set<std::string> plans;
  std::vector<Candidate> even_here;
  int64_t uneven = 0;
  for (const Candidate& c : candidates) {
    const core::Plan plan = make_plan(c, request);
    const std::string json = core::to_json(plan).dump();
    EXPECT_NO_THROW(plan.validate()) << json;
    EXPECT_TRUE(plans.insert(json).second) << "duplicate: " << json;
    EXPECT_EQ(core::plan_from_json(core::to_json(plan)), plan) << json;
    if (c.split.form == SplitForm::even) {
      even_here.push_back(c);
      EXPECT_TRUE(plan.parallel.pipeline_layer_split.empty()) << json;
      continue;
    }
    ++uneven;
    EXPECT_GE(c.pipeline_parallel, 2) << json;
    EXPECT_FALSE(plan.even_layer_split()) << json;
    EXPECT_EQ(int64_t(plan.parallel.pipeline_layer_split.size()), c.pipeline_parallel * plan.virtual_stages()) << json;
  }
  EXPECT_GT(uneven, 0);
  EXPECT_EQ(even_here, even);
}

// A candidate is held by the million: the split adds a few bytes, not a vector.
static_assert(sizeof(Candidate) <= 48, "plan::Candidate must stay small");

// On a small space every split of the layers over two stages is tried: L + 1 of them, less the
// even one, for each choice of the other knobs.
TEST(Enumeration, SmallSpacesTryEverySplit) {
  core::ModelSpec model = core::find_model_preset("gpt2-124m").spec;
  model.num_layers = 6;
  const SearchRequest request =
      request_for(Space{.label = "six layers", .model = "gpt2-124m", .devices = 2, .global_batch = 8,
                        .max_micro_batch_size = 1, .custom_model = model});
  RejectCounts rejects;
  int64_t combinations = 0;
  std::set<std::vector<int64_t>> splits_over_two;
  for (const Candidate& c : enumerate_candidates(request, rejects, combinations)) {
    const core::Plan plan = make_plan(c, request);
    if (c.pipeline_parallel == 2 && plan.virtual_stages() == 1 && c.schedule == core::Schedule::one_f_one_b &&
        c.recompute == core::Recompute::none && !c.sequence_parallel && !c.tp_comm_overlap)
      splits_over_two.insert(plan.virtual_stage_layers());
  }
  std::set<std::vector<int64_t>> expected;
  for (int64_t first = 0; first <= 6; ++first) expected.insert({first, 6 - first});
  EXPECT_EQ(splits_over_two, expected);
}

}  // namespace
}  // namespace loom::plan
