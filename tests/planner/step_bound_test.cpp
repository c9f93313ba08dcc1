// The closed-form step-time bound the search prunes with is a true lower bound: for every
// fitting plan of several spaces it never exceeds the simulated step time, with and without
// the data-parallel reduction overlapped.

#include "planner/search_space.hpp"

#include "core/default_plan.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "simulator/cost_model.hpp"
#include "simulator/prediction.hpp"
#include "simulator/step_bound.hpp"
#include "simulator/step_costs.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

namespace loom::plan {
namespace {

SearchRequest request_for(const std::string& model, int64_t devices, int64_t global_batch, bool fewer_devices = false) {
  SearchRequest r;
  r.model = core::find_model_preset(model).spec;
  r.training = core::default_plan().training;
  r.training.global_batch_size = global_batch;
  r.devices = devices;
  r.devices_per_node = 8;
  r.profile_name = "a100-80gb-dgx";
  r.profile = core::resolve_profile(r.profile_name);
  r.allow_fewer_devices = fewer_devices;
  return r;
}

struct BoundCase {
  std::string model;
  int64_t devices;
  int64_t global_batch;
  bool fewer_devices;
};

void PrintTo(const BoundCase& c, std::ostream* os) {
  *os << c.model << " on " << c.devices << " devices, gbs " << c.global_batch << (c.fewer_devices ? ", fewer devices" : "");
}

const BoundCase kSpaces[] = {{"gpt2-124m", 8, 64, false}, {"gpt2-350m", 16, 64, true}, {"gpt3-1.3b", 32, 256, false},
                             {"llama2-7b", 64, 256, false}, {"gpt3-175b", 64, 64, false}};

class StepTimeLowerBound : public ::testing::TestWithParam<std::tuple<BoundCase, bool>> {};

// Bound and simulated step time of every fitting plan of the space.
struct Comparison {
  std::string plan;  // the parallel part, as JSON
  int64_t microbatches = 0;
  double bound_s = 0;
  double simulated_s = 0;
  double ratio() const { return bound_s / simulated_s; }
};

std::vector<Comparison> compare_all(const BoundCase& space, bool overlap) {
  const SearchRequest request = request_for(space.model, space.devices, space.global_batch, space.fewer_devices);
  RejectCounts rejects;
  int64_t combinations = 0;
  const std::vector<Candidate> candidates = enumerate_candidates(request, rejects, combinations);
  const sim::CostModel costs(request.profile, request.training.dtype);
  sim::SimulationOptions options;
  options.record_timeline = false;
  std::vector<Comparison> out;
  for (const Candidate& c : candidates) {
    if (c.overlap_grad_reduce != overlap) continue;  // the search walks both; each half is checked on its own
    const core::Plan plan = make_plan(c, request);
    const sim::Prediction prediction = sim::simulate(plan, request.profile, options);
    if (!prediction.fits) continue;
    const double bound =
        sim::step_time_lower_bound(sim::step_costs(plan, costs), int32_t(plan.parallel.pipeline_parallel),
                                   int32_t(plan.virtual_stages()), int32_t(plan.microbatches()));
    out.push_back({core::to_json(plan.parallel).dump() + fmt::format(" on {} devices", plan.cluster.world_size()),
                   plan.microbatches(), bound, prediction.step_time_s});
  }
  return out;
}

// Up to rounding: the bound adds m copies of a rank's work in one product, the simulation one
// action at a time, so where the bound is tight (pp = 1) the two sums may differ in the last bits.
TEST_P(StepTimeLowerBound, NeverExceedsTheSimulatedStepTimeBeyondRounding) {
  const auto& [space, overlap] = GetParam();
  const std::vector<Comparison> all = compare_all(space, overlap);
  ASSERT_FALSE(all.empty());
  const Comparison* tightest = &all.front();
  const Comparison* loosest = &all.front();
  int64_t violations = 0;
  for (const Comparison& c : all) {
    EXPECT_GT(c.bound_s, 0.0) << c.plan;
    if (c.bound_s > c.simulated_s * (1 + 1e-12) && ++violations <= 5)
      ADD_FAILURE() << fmt::format("bound {:.17g} s > simulated {:.17g} s (ratio {:.15f}) for {}, m={}", c.bound_s,
                                   c.simulated_s, c.ratio(), c.plan, c.microbatches);
    if (c.ratio() > tightest->ratio()) tightest = &c;
    if (c.ratio() < loosest->ratio()) loosest = &c;
  }
  EXPECT_EQ(violations, 0);
  const std::string summary = fmt::format(
      "{} on {} devices, gbs {}, overlap_grad_reduce={}: {} fitting plans, bound/simulated in [{:.4f}, {:.15f}]"
      "\n  tightest: {}\n  loosest:  {}",
      space.model, space.devices, space.global_batch, overlap, all.size(), loosest->ratio(), tightest->ratio(),
      tightest->plan, loosest->plan);
  std::cout << summary << "\n";
  RecordProperty("bound_ratio_tightest", fmt::format("{:.15f}", tightest->ratio()));
  RecordProperty("bound_ratio_loosest", fmt::format("{:.6f}", loosest->ratio()));
  SCOPED_TRACE(summary);
  EXPECT_GT(loosest->ratio(), 0.5) << "a bound this loose prunes little";
}

// Exactly, as the search's pruning (`bound > threshold` skips a plan) and its exactness claim need.
TEST(StepTimeLowerBoundExact, NeverExceedsTheSimulatedStepTimeExactly) {
  for (const BoundCase& space : kSpaces)
    for (bool overlap : {false, true}) {
      SCOPED_TRACE(::testing::PrintToString(space) + (overlap ? ", overlap_grad_reduce" : ""));
      int64_t violations = 0;
      double worst = 1;
      for (const Comparison& c : compare_all(space, overlap)) {
        if (c.bound_s > c.simulated_s && ++violations <= 3)
          ADD_FAILURE() << fmt::format("bound {:.17g} s > simulated {:.17g} s for {}, m={}", c.bound_s, c.simulated_s,
                                       c.plan, c.microbatches);
        worst = std::max(worst, c.ratio());
      }
      EXPECT_EQ(violations, 0) << fmt::format("largest bound/simulated: 1 + {:.3g}", worst - 1);
    }
}

INSTANTIATE_TEST_SUITE_P(
    FittingPlans, StepTimeLowerBound,
    ::testing::Combine(::testing::ValuesIn(kSpaces), ::testing::Bool()),
    [](const auto& info) {
      const BoundCase& c = std::get<0>(info.param);
      std::string name = fmt::format("{}_{}dev_gbs{}{}{}", c.model, c.devices, c.global_batch,
                                     c.fewer_devices ? "_fewer" : "", std::get<1>(info.param) ? "_overlap" : "");
      for (char& ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return name;
    });

}  // namespace
}  // namespace loom::plan
