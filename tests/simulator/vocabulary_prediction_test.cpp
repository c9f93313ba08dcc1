// A plan that derives its padded vocabulary predicts exactly as the plan that pins the same rows:
// the simulator sees only the rows a plan trains (Plan::padded_vocab_size), whichever way the plan
// says them.

#include "simulator/prediction.hpp"

#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"

#include <gtest/gtest.h>

#include <tuple>

namespace loom::sim {
namespace {

core::Plan gpt3_plan(int64_t tp, int64_t pp, bool sequence_parallel) {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt3-2.7b").spec;  // vocab-size 50257
  plan.training.global_batch_size = 64;
  plan.cluster = {2, 8, "a100-80gb-dgx", std::nullopt, {}};
  plan.parallel.tensor_parallel = tp;
  plan.parallel.pipeline_parallel = pp;
  plan.parallel.micro_batch_size = 2;
  plan.parallel.sequence_parallel = sequence_parallel;
  plan.parallel.recompute = core::Recompute::selective;
  core::derive_data_parallel(plan);
  plan.validate();
  return plan;
}

TEST(VocabularyPrediction, DerivedAndPinnedRowsPredictTheSame) {
  const core::Profile profile = core::resolve_profile("a100-80gb-dgx");
  for (const auto& [tp, pp, sp] :
       {std::tuple{1, 2, false}, std::tuple{2, 2, true}, std::tuple{8, 2, true}}) {
    const core::Plan derived = gpt3_plan(tp, pp, sp);
    core::Plan pinned = derived;
    pinned.model.vocab_size.reset();
    pinned.model.padded_vocab_size = derived.padded_vocab_size();
    EXPECT_EQ(to_json(simulate(derived, profile)).dump(), to_json(simulate(pinned, profile)).dump())
        << "tp " << tp;
  }
}

TEST(VocabularyPrediction, MorePaddedRowsCostMoreOnTheLastStage) {
  const core::Profile profile = core::resolve_profile("a100-80gb-dgx");
  const core::Plan derived = gpt3_plan(8, 2, true);  // 51200 rows
  core::Plan fewer = derived;
  fewer.model.padded_vocab_size = 50264;  // 50257 rounded up to 8 only
  const Prediction more_rows = simulate(derived, profile), fewer_rows = simulate(fewer, profile);
  EXPECT_GT(more_rows.memory.back().total_bytes(), fewer_rows.memory.back().total_bytes());
  EXPECT_GT(more_rows.model_flops_per_step, fewer_rows.model_flops_per_step);
}

}  // namespace
}  // namespace loom::sim
