// The vocabulary in a search and in the Megatron export: each tp pads the tokenizer's size its own
// way; a model that pins padded-vocab-size alone is searched as before (that size padded per tp);
// a pin beside vocab-size holds; the exported --make-vocab-size-divisible-by makes Megatron pad to
// the rows Loom planned.

#include "core/plan_json.hpp"  // derive_data_parallel
#include "planner/megatron_args.hpp"
#include "planner_test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

namespace loom::plan {
namespace {

using testing::options_for;

TEST(VocabularySearch, EachTensorParallelSizePadsTheTokenizersVocabulary) {
  const SearchResult result = search(testing::request_for("gpt2-350m", 8, 64), options_for(1000));
  ASSERT_FALSE(result.top.empty());
  std::set<int64_t> tps;
  for (const RankedPlan& ranked : result.top) {
    const core::Plan& plan = ranked.plan;
    const int64_t tp = plan.parallel.tensor_parallel;
    tps.insert(tp);
    EXPECT_EQ(plan.model.vocab_size, 50257);
    EXPECT_FALSE(plan.model.padded_vocab_size.has_value());
    EXPECT_EQ(plan.padded_vocab_size(), (50257 + 128 * tp - 1) / (128 * tp) * (128 * tp))
        << "tp " << tp;
  }
  EXPECT_GT(tps.size(), 1u);
}

TEST(VocabularySearch, ALonePinIsSearchedAsTheTokenizersSizeAsBefore) {
  SearchRequest derived = testing::request_for("gpt2-350m", 8, 64);
  SearchRequest pinned = derived;
  pinned.model.vocab_size.reset();
  pinned.model.padded_vocab_size = 50257;  // a model file written before Loom derived the padding
  const core::ModelSpec searched = searched_model(pinned.model);
  EXPECT_EQ(searched.vocab_size, 50257);
  EXPECT_FALSE(searched.padded_vocab_size.has_value());
  EXPECT_EQ(searched.make_vocab_size_divisible_by, 128);
  const SearchResult a = search(derived, options_for(20)), b = search(pinned, options_for(20));
  ASSERT_EQ(a.top.size(), b.top.size());
  for (size_t i = 0; i < a.top.size(); ++i) {
    EXPECT_EQ(a.top[i].plan, b.top[i].plan) << "rank " << i;
    EXPECT_EQ(a.top[i].prediction.step_time_s, b.top[i].prediction.step_time_s) << "rank " << i;
  }
  EXPECT_EQ(a.rejects.by_rule, b.rejects.by_rule);
}

TEST(VocabularySearch, APinBesideTheTokenizersSizeHoldsAndRulesOutTheTensorSizesThatDoNotDivideIt) {
  SearchRequest request = testing::request_for("gpt2-350m", 8, 64);  // 16 heads: tp 1, 2, 4, 8
  request.model.padded_vocab_size = 50260;  // 4 · 12565: tp 8 cannot split it
  EXPECT_EQ(searched_model(request.model), request.model);
  const SearchResult result = search(request, options_for(1000));
  ASSERT_FALSE(result.top.empty());
  for (const RankedPlan& ranked : result.top) {
    EXPECT_LE(ranked.plan.parallel.tensor_parallel, 4);
    EXPECT_EQ(ranked.plan.padded_vocab_size(), 50260);
  }
  EXPECT_GT(result.rejects.by_rule[size_t(core::PlanRule::vocab_divisible_by_tp)], 0);
}

// Megatron's own padding with the exported divisor.
int64_t megatron_pads(int64_t tokenizer_vocab, int64_t divisor, int64_t tp) {
  const int64_t multiple = divisor * tp;
  return (tokenizer_vocab + multiple - 1) / multiple * multiple;
}

int64_t exported_divisor(const core::Plan& plan) {
  const std::vector<std::string> args = megatron_arguments(plan);
  const auto it = std::find(args.begin(), args.end(), "--make-vocab-size-divisible-by");
  EXPECT_NE(it, args.end());
  EXPECT_EQ(std::count(args.begin(), args.end(), "--make-vocab-size-divisible-by"), 1);
  return it == args.end() ? 0 : std::stoll(*(it + 1));
}

core::Plan gpt2_plan_at(int64_t tp) {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt2-124m").spec;
  plan.training.global_batch_size = 8;
  plan.cluster = {1, tp, "a100-80gb-dgx", std::nullopt, {}};
  plan.parallel.tensor_parallel = tp;
  core::derive_data_parallel(plan);
  return plan;
}

TEST(MegatronVocabulary, TheExportedDivisorMakesMegatronPadToThePlannedRows) {
  for (const int64_t tp : {1, 2, 4}) {
    core::Plan derived = gpt2_plan_at(tp);
    derived.model.make_vocab_size_divisible_by = 64;
    derived.validate();
    EXPECT_EQ(exported_divisor(derived), 64);

    core::Plan llm_c = gpt2_plan_at(tp);  // GPT-2's 50257 tokens in 50304 rows at every tp
    llm_c.model.padded_vocab_size = 50304;
    llm_c.validate();
    EXPECT_EQ(megatron_pads(50257, exported_divisor(llm_c), tp), 50304) << "tp " << tp;

    core::Plan older = gpt2_plan_at(tp);  // pinned alone: any tokenizer that fits pads to the pin
    older.model.vocab_size.reset();
    older.model.padded_vocab_size = 50257 * tp;
    older.validate();
    const int64_t divisor = exported_divisor(older);
    for (const int64_t tokens : {int64_t(1), int64_t(50257), 50257 * tp})
      EXPECT_EQ(megatron_pads(tokens, divisor, tp), 50257 * tp)
          << "tp " << tp << ", " << tokens << " tokens";
  }
  core::Plan usual = gpt2_plan_at(2);
  usual.model.vocab_size.reset();
  usual.model.padded_vocab_size =
      50432;  // what Loom planned at tp 2: Megatron's 128 gives it for GPT-2
  EXPECT_EQ(exported_divisor(usual), 128);
}

}  // namespace
}  // namespace loom::plan
