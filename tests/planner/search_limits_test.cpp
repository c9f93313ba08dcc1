// The search within its limits: the space walk (which counts rejected combinations in blocks) is
// checked against the plain walk it replaced, one Plan::violated_rule per combination, on spaces
// that exercise every shortcut; a plan whose memory cannot be counted is a reject with its reason,
// never a fitting plan; and progress is reported while the space is walked.

#include "planner/search.hpp"
#include "planner_test_support.hpp"

#include "core/error.hpp"
#include "core/limits.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace loom::plan {
namespace {

using namespace loom::plan::testing;

// The enumeration as it was before the walk learnt to count in blocks (O(combinations)), with
// what was added since: schedules too large to simulate, the overlap switches.
std::vector<Candidate> plain_enumeration(const SearchRequest& request, RejectCounts& rejects, int64_t& combinations) {
  std::vector<Candidate> valid;
  combinations = 0;
  core::Plan plan = make_plan(Candidate{}, request);
  const int64_t layers = request.model.num_layers;
  std::vector<int64_t> device_counts;
  if (!request.allow_fewer_devices) {
    device_counts = {request.devices};
  } else {
    for (int64_t d = 1; d < std::min(request.devices_per_node, request.devices); ++d)
      if (request.devices_per_node % d == 0) device_counts.push_back(d);
    for (int64_t d = std::min(request.devices_per_node, request.devices); d <= request.devices; d += request.devices_per_node)
      device_counts.push_back(d);
  }
  for (int64_t devices : device_counts) {
    const int64_t max_tp = request.allow_cross_node_tp ? devices : std::min(devices, request.devices_per_node);
    for (int64_t tp = 1; tp <= max_tp; ++tp)
      for (int64_t pp = 1; pp <= std::min(layers, devices / tp); ++pp) {
        const int64_t dp = devices % (tp * pp) == 0 ? devices / (tp * pp) : 0;
        std::vector<std::pair<core::Schedule, int64_t>> schedules = {{core::Schedule::gpipe, 0},
                                                                     {core::Schedule::one_f_one_b, 0}};
        if (layers % pp == 0)
          for (int64_t v = 1; v < layers / pp; ++v)
            if ((layers / pp) % v == 0) schedules.push_back({core::Schedule::interleaved, v});
        for (int64_t b = 1; b <= request.max_micro_batch_size; b *= 2)
          for (const auto& [schedule, per_virtual] : schedules)
            for (core::Recompute recompute : {core::Recompute::none, core::Recompute::selective, core::Recompute::full})
              for (bool sp : {false, true})
                for (bool distributed : {false, true})
                  for (bool grad_reduce : {false, true})
                    for (bool param_gather : {false, true})
                      for (bool tp_overlap : {false, true}) {
                  const Candidate c{int32_t(devices), int32_t(tp), int32_t(pp), int32_t(dp), int32_t(b),
                                    int32_t(per_virtual), schedule, recompute, sp, distributed, grad_reduce,
                                    param_gather, tp_overlap};
                  ++combinations;
                  apply(c, request, plan);
                  if (dp == 0) plan.parallel.data_parallel = 0;
                  if (const auto rule = plan.violated_rule()) {
                    ++rejects.by_rule[size_t(*rule)];
                    continue;
                  }
                  if (distributed && dp == 1) {
                    ++rejects.distributed_optimizer_without_dp;
                    continue;
                  }
                  if (grad_reduce && dp == 1) {
                    ++rejects.overlap_without_dp;
                    continue;
                  }
                  if (schedule == core::Schedule::gpipe && pp == 1) {
                    ++rejects.gpipe_without_pipeline;
                    continue;
                  }
                  if (pp * plan.virtual_stages() * plan.microbatches() > core::limits::kMaxSimulatedStageMicrobatches) {
                    ++rejects.too_large_to_simulate;
                    continue;
                  }
                  valid.push_back(c);
                }
      }
  }
  return valid;
}

SearchRequest space(const std::string& model, int64_t devices, int64_t batch, int64_t per_node, bool fewer,
                    bool cross_node, int64_t max_micro_batch = 16) {
  SearchRequest r = request_for(Space{.label = model, .model = model, .devices = devices, .global_batch = batch});
  r.devices_per_node = per_node;
  r.allow_fewer_devices = fewer;
  r.allow_cross_node_tp = cross_node;
  r.max_micro_batch_size = max_micro_batch;
  return r;
}

TEST(SpaceWalk, CountsEveryRuleAndEmitsTheSamePlansInTheSameOrderAsThePlainWalk) {
  std::vector<std::pair<std::string, SearchRequest>> spaces = {
      {"gpt2 on 8", space("gpt2-124m", 8, 64, 8, false, false)},
      {"gpt2 on up to 64, cross-node tp", space("gpt2-124m", 64, 128, 8, true, true)},
      {"gpt3-1.3b on up to 48", space("gpt3-1.3b", 48, 96, 8, true, false)},
      {"llama3-8b (8 query groups) on 32, cross-node tp", space("llama3-8b", 32, 64, 4, true, true, 4)},
      {"gpt2, batch 2^21: schedules too large to simulate", space("gpt2-124m", 8, int64_t(1) << 21, 8, false, false, 4)},
      {"gpt2 on up to 24 with 3 per node", space("gpt2-124m", 24, 72, 3, true, false)},
  };
  // Few layers: every pp divides them (no stand-in for the others), and one layer: only pp 1.
  for (const int64_t layers : {1, 2, 3}) {
    SearchRequest r = space("gpt2-124m", 16, 32, 8, true, true, 2);
    r.model.num_layers = layers;
    spaces.push_back({"gpt2 with " + std::to_string(layers) + " layers", r});
  }
  // tp beyond its maximum (2^16) fails before the heads: one layer, one micro-batch size.
  SearchRequest wide = space("gpt2-124m", 65600, 65600, 1, false, true, 1);
  wide.model.num_layers = 1;
  spaces.push_back({"tp past 65536", wide});

  for (auto& [label, request] : spaces) {
    SCOPED_TRACE(label);
    // The plain walk knows even splits only (uneven ones: enumeration_test.cpp).
    request.search_layer_splits = false;
    ASSERT_NO_THROW(request.validate());
    RejectCounts expected_rejects, rejects;
    int64_t expected_combinations = -1, combinations = -1;
    const std::vector<Candidate> expected = plain_enumeration(request, expected_rejects, expected_combinations);
    const std::vector<Candidate> walked = enumerate_candidates(request, rejects, combinations);
    EXPECT_EQ(combinations, expected_combinations);
    EXPECT_EQ(rejects.by_rule, expected_rejects.by_rule);
    EXPECT_EQ(rejects.distributed_optimizer_without_dp, expected_rejects.distributed_optimizer_without_dp);
    EXPECT_EQ(rejects.gpipe_without_pipeline, expected_rejects.gpipe_without_pipeline);
    EXPECT_EQ(rejects.overlap_without_dp, expected_rejects.overlap_without_dp);
    EXPECT_EQ(rejects.too_large_to_simulate, expected_rejects.too_large_to_simulate);
    EXPECT_EQ(combinations, int64_t(walked.size()) + rejects.total());
    EXPECT_TRUE(walked == expected) << walked.size() << " plans walked, " << expected.size() << " expected";
  }
}

TEST(SpaceWalk, SchedulesTooLargeToSimulateAreCountedNotKept) {
  const SearchRequest request = space("gpt2-124m", 8, int64_t(1) << 21, 8, false, false, 4);
  RejectCounts rejects;
  int64_t combinations = 0;
  const std::vector<Candidate> walked = enumerate_candidates(request, rejects, combinations);
  EXPECT_GT(rejects.too_large_to_simulate, 0);
  ASSERT_FALSE(walked.empty());
  for (const Candidate& c : walked) {
    const core::Plan plan = make_plan(c, request);
    EXPECT_LE(c.pipeline_parallel * plan.virtual_stages() * plan.microbatches(),
              core::limits::kMaxSimulatedStageMicrobatches);
  }
  bool named = false;
  for (const auto& [reason, count] : rejects.reasons(request.profile.device.memory_bytes))
    named |= reason.find("too large to simulate") != std::string::npos && count == rejects.too_large_to_simulate;
  EXPECT_TRUE(named);
}

// The case: Llama 3 405B with a 2^24-token sequence and one sequence per step once
// ranked a plan with a peak memory of "0.0 GiB". Plans whose memory cannot be counted are now
// rejects with their reason, the others do not fit, and nothing is ranked.
TEST(UncountableMemory, SixteenMillionTokenSequenceIsRejectedWithItsReasonNotRanked) {
  SearchRequest request = space("llama3-405b", 1024, 1, 8, true, false);
  request.model.seq_length = int64_t(1) << 24;
  const SearchResult result = search(request, options_for(10, true));
  EXPECT_TRUE(result.top.empty());
  EXPECT_TRUE(result.pareto.empty());
  EXPECT_EQ(result.stats.fitting, 0);
  EXPECT_GT(result.rejects.not_countable, 0);
  EXPECT_EQ(result.stats.valid, result.rejects.not_countable + result.rejects.does_not_fit);
  for (const NearMiss& miss : result.nearest_misses) {
    EXPECT_GT(miss.peak_memory_bytes, request.profile.device.memory_bytes);
    EXPECT_GT(miss.lacking_bytes, 0);
  }
  bool named = false;
  for (const auto& [reason, count] : result.rejects.reasons(request.profile.device.memory_bytes))
    named |= reason.find("beyond what Loom counts") != std::string::npos && count == result.rejects.not_countable;
  EXPECT_TRUE(named);
}

TEST(SearchProgress, ReportedWhileTheSpaceIsWalked) {
  const SearchRequest request = space("gpt2-124m", 8192, 64, 8, true, false);
  std::vector<double> fractions;
  SearchOptions options = options_for(3, false, 1);
  options.progress = [&](double fraction) { fractions.push_back(fraction); };
  search(request, options);
  // 1027 device counts: the walk reports every 64 of them, within its first tenth of the bar.
  const auto walking = std::count_if(fractions.begin(), fractions.end(), [](double f) { return f < 0.1; });
  EXPECT_GE(walking, 16);
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  EXPECT_EQ(fractions.back(), 1.0);
}

// An error met while plans are timed on the search's worker threads (here: a profile with no
// inter-node link asked to time groups that span nodes) reaches the caller as that one error, on
// one thread or several, instead of ending the process from a thread.
TEST(SearchErrors, AnErrorOnAWorkerThreadReachesTheCaller) {
  SearchRequest request = request_for("loom-tiny", 6, 6);
  request.devices_per_node = 2;
  request.profile_name = "cpu-epyc-2core-vm";
  request.profile = core::resolve_profile(request.profile_name);
  for (int threads : {1, 2, 4}) {
    try {
      (void)search(request, options_for(5, false, threads));
      ADD_FAILURE() << threads << " threads: expected InvalidInput";
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find("no inter-node link"), std::string::npos) << e.what();
    }
  }
}

TEST(SearchRequestLimits, MaximaAreNamed) {
  SearchRequest request = space("gpt2-124m", 8, 64, 8, false, false);
  request.max_micro_batch_size = core::limits::kMaxMicroBatch + 1;
  EXPECT_THROW(request.validate(), InvalidInput);
  request = space("gpt2-124m", core::limits::kMaxDevices * 2, 64, 8, false, false);
  EXPECT_THROW(request.validate(), InvalidInput);
  request = space("gpt2-124m", 8, 64, 8, false, false);
  request.price_per_device_hour = 1e308;
  EXPECT_THROW(request.validate(), InvalidInput);
}

}  // namespace
}  // namespace loom::plan
