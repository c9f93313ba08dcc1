// The vocabulary a plan trains: Megatron's padding of the tokenizer's size for each tensor-parallel
// size, a pinned padded size kept as it is, and the counts that follow from each.

#include "core/vocabulary.hpp"
#include "core/error.hpp"
#include "core/model_arithmetic.hpp"
#include "core/model_presets.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

namespace loom::core {
namespace {

using ::testing::HasSubstr;

int64_t padded(std::string_view preset, int64_t tp) {
  return padded_vocab_size(find_model_preset(preset).spec, tp);
}

TEST(Vocabulary, PadsTheTokenizersSizeAsMegatronDoesForEachTensorParallelSize) {
  // ceil(V / (128·tp)) · 128·tp, megatron/training/tokenizer: _vocab_size_with_padding.
  EXPECT_EQ(padded("gpt2-124m", 1), 50304);
  EXPECT_EQ(padded("gpt2-124m", 2), 50432);
  EXPECT_EQ(padded("gpt2-124m", 4), 50688);
  EXPECT_EQ(padded("gpt3-175b", 8), 51200);
  EXPECT_EQ(padded("llama2-7b", 8), 32768);
  EXPECT_EQ(padded("llama3-8b", 2), 128256);  // already a multiple of 256
  EXPECT_EQ(padded("llama3-8b", 8), 129024);
  EXPECT_EQ(padded("megatron-1t", 8), 51200);
  for (int64_t tp : {1, 2, 3, 4, 8, 16, 64})
    EXPECT_EQ(padded("gpt2-124m", tp) % (128 * tp), 0) << "tp " << tp;
}

TEST(Vocabulary, TheDivisorIsTheModelsOwn) {
  ModelSpec model = find_model_preset("gpt2-124m").spec;
  model.make_vocab_size_divisible_by = 1;
  EXPECT_EQ(padded_vocab_size(model, 1), 50257);
  EXPECT_EQ(padded_vocab_size(model, 8), 50264);
  // loom-tiny pads its 256 bytes to multiples of 64·tp: no padding at any tp its 4 heads allow.
  for (int64_t tp : {1, 2, 4}) EXPECT_EQ(padded("loom-tiny", tp), 256) << "tp " << tp;
}

TEST(Vocabulary, APinnedSizeHoldsAtEveryTensorParallelSize) {
  ModelSpec model = find_model_preset("gpt2-124m").spec;
  model.padded_vocab_size = 50304;  // as llm.c trains GPT-2
  for (int64_t tp : {1, 2, 8}) EXPECT_EQ(padded_vocab_size(model, tp), 50304) << "tp " << tp;
  EXPECT_EQ(model_vocab_size(model), 50304);       // the model's own rows: the pin, at any tp
  EXPECT_EQ(parameter_count(model), 124'475'904);  // as llm.c counts its GPT-2
  model.padded_vocab_size.reset();
  EXPECT_EQ(model_vocab_size(model), 50257);  // unpadded until a tp is known
  EXPECT_EQ(parameter_count(model), 124'439'808);
}

TEST(Vocabulary, PlanTrainsThePaddedRows) {
  Plan plan;
  plan.model = find_model_preset("gpt3-175b").spec;
  plan.parallel.tensor_parallel = 8;
  EXPECT_EQ(plan.padded_vocab_size(), 51200);
  const ModelSpec trained = plan.trained_model();
  EXPECT_EQ(trained.padded_vocab_size, 51200);
  EXPECT_EQ(trained.vocab_size, 50257);
  EXPECT_EQ(padded_vocab_size(trained, 1), 51200);  // fixed, whatever tp asks
}

TEST(Vocabulary, ModelCountsUseTheTokenizersSizeAndPlanCountsThePaddedRows) {
  // A plan that derives 51200 rows counts exactly as one that pins 51200.
  Plan derived;
  derived.model = find_model_preset("gpt2-350m").spec;
  derived.training.global_batch_size = 16;
  derived.parallel.tensor_parallel = 8;
  derived.parallel.pipeline_parallel = 2;
  Plan pinned = derived;
  pinned.model.padded_vocab_size = 51200;
  EXPECT_EQ(parameters_per_device_by_stage(derived), parameters_per_device_by_stage(pinned));
  EXPECT_EQ(model_flops_per_step(derived), model_flops_per_step(pinned));
  EXPECT_EQ(hardware_flops_per_step(derived), hardware_flops_per_step(pinned));
  // The model alone: the published count over the tokenizer's 50257 tokens.
  EXPECT_EQ(parameter_count(derived.model), 354'823'168);
  EXPECT_LT(model_flops_per_step(derived.model, 16), model_flops_per_step(derived));
}

std::string refusal(const std::function<void(ModelSpec&)>& change) {
  ModelSpec model = find_model_preset("gpt2-124m").spec;
  change(model);
  try {
    model.validate();
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "(valid)";
}

TEST(Vocabulary, ValidationNamesTheFieldAndTheRule) {
  EXPECT_EQ(refusal([](ModelSpec&) {}), "(valid)");
  EXPECT_EQ(refusal([](ModelSpec& m) { m.padded_vocab_size = 50304; }), "(valid)");
  EXPECT_THAT(refusal([](ModelSpec& m) { m.padded_vocab_size = 50000; }),
              HasSubstr("padded-vocab-size=50000 is smaller than vocab-size=50257"));
  EXPECT_THAT(
      refusal([](ModelSpec& m) { m.vocab_size.reset(); }),
      HasSubstr(
          "the model needs vocab-size (the tokenizer's vocabulary, padded for each tensor-parallel "
          "size) or padded-vocab-size"));
  EXPECT_THAT(refusal([](ModelSpec& m) { m.vocab_size = 0; }),
              HasSubstr("vocab-size=0 must be a positive integer"));
  EXPECT_THAT(refusal([](ModelSpec& m) { m.make_vocab_size_divisible_by = 0; }),
              HasSubstr("make-vocab-size-divisible-by=0 must be a positive integer"));
  EXPECT_THAT(
      refusal([](ModelSpec& m) { m.make_vocab_size_divisible_by = (int64_t(1) << 16) + 1; }),
      HasSubstr("make-vocab-size-divisible-by=65537 is larger than the supported 65536"));
  EXPECT_THAT(refusal([](ModelSpec& m) { m.vocab_size = (int64_t(1) << 24) + 1; }),
              HasSubstr("vocab-size=16777217 is larger than the supported 16777216"));
}

TEST(QueryGroups, AbsentMeansOneGroupPerHead) {
  ModelSpec model = find_model_preset("gpt2-124m").spec;
  EXPECT_FALSE(model.num_query_groups.has_value());
  EXPECT_EQ(model.query_groups(), 12);
  model.num_attention_heads = 16;  // edited alone: still one group per head
  EXPECT_EQ(model.query_groups(), 16);
  EXPECT_NO_THROW(model.validate());
  EXPECT_EQ(find_model_preset("llama3-70b").spec.num_query_groups, 8);
  EXPECT_THAT(
      refusal([](ModelSpec& m) {
        m.num_query_groups = 12;
        m.num_attention_heads = 16;
      }),
      HasSubstr(
          "num-query-groups=12 does not divide num-attention-heads=16; leave num-query-groups out "
          "for one group per head"));
}

}  // namespace
}  // namespace loom::core
