// Plans that are easier to edit by hand: what Megatron derives (the padded vocabulary, the query
// groups of multi-head attention) stays derived, so that one field can be changed alone; and a
// plan written before reads back exactly as it was written, meaning what it meant.

#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace loom::core {
namespace {

using ::testing::HasSubstr;

// What `loom init --model NAME` writes (tp 1, one 8-device node), as a document.
Json initial_plan(std::string_view preset) {
  Plan plan;
  plan.model = find_model_preset(preset).spec;
  plan.training.global_batch_size = 64;
  plan.cluster = {1, 8, "a100-80gb-dgx", std::nullopt, {}};
  derive_data_parallel(plan);
  plan.validate();
  return to_json(plan);
}

// The model of a plan that `loom init --model gpt2-124m --tp 2 --nodes 2 --pp 2` wrote before Loom
// derived the vocabulary: its keys, in their order.
constexpr std::string_view kOlderPlan = R"({
  "format": "loom-plan",
  "version": 1,
  "model": {
    "name": "gpt2-124m",
    "num-layers": 12,
    "hidden-size": 768,
    "num-attention-heads": 12,
    "num-query-groups": 12,
    "ffn-hidden-size": 3072,
    "padded-vocab-size": 50432,
    "seq-length": 1024,
    "untie-embeddings-and-output-weights": false,
    "swiglu": false,
    "normalization": "LayerNorm",
    "position-embedding-type": "learned_absolute",
    "add-bias-linear": true
  },
  "training": {
    "global-batch-size": 32,
    "dtype": "bf16",
    "lr": 0.0006,
    "min-lr": 6e-05,
    "lr-warmup-iters": 1,
    "train-iters": 100,
    "weight-decay": 0.1,
    "clip-grad": 1.0,
    "adam-beta1": 0.9,
    "adam-beta2": 0.95,
    "adam-eps": 1e-08,
    "seed": 1234
  },
  "cluster": {
    "nodes": 2,
    "devices-per-node": 8,
    "profile": "a100-80gb-dgx",
    "price-per-device-hour": null
  },
  "parallel": {
    "tensor-model-parallel-size": 2,
    "pipeline-model-parallel-size": 2,
    "micro-batch-size": 1,
    "schedule": "1f1b",
    "recompute-granularity": "none",
    "sequence-parallel": false,
    "use-distributed-optimizer": false,
    "num-layers-per-virtual-pipeline-stage": null
  }
})";

std::string refusal(const Json& document) {
  try {
    plan_from_json(document);
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "(valid)";
}

TEST(EditablePlan, InitWritesTheTokenizersVocabularyAndNoQueryGroupsForMultiHeadAttention) {
  const Json model = initial_plan("gpt3-175b")["model"];
  EXPECT_EQ(model["vocab-size"], 50257);
  EXPECT_EQ(model["make-vocab-size-divisible-by"], 128);
  EXPECT_FALSE(model.contains("padded-vocab-size"));
  EXPECT_FALSE(model.contains("num-query-groups"));
  EXPECT_EQ(initial_plan("llama3-8b")["model"]["num-query-groups"], 8);
}

TEST(EditablePlan, TensorParallelSizeCanBeEditedAlone) {
  Json document = initial_plan("gpt3-175b");
  EXPECT_EQ(plan_from_json(document).padded_vocab_size(), 50304);
  for (const int64_t tp : {2, 4, 8}) {
    document["parallel"]["tensor-model-parallel-size"] = tp;
    const Plan plan = plan_from_json(document);
    EXPECT_EQ(plan.padded_vocab_size() % (128 * tp), 0) << "tp " << tp;
  }
  EXPECT_EQ(plan_from_json(document).padded_vocab_size(), 51200);
}

TEST(EditablePlan, HeadsOfAGptPlanCanBeEditedAlone) {
  Json document = initial_plan("gpt2-124m");
  document["model"]["num-attention-heads"] = 16;  // 48-wide heads of hidden 768
  const Plan plan = plan_from_json(document);
  EXPECT_EQ(plan.model.query_groups(), 16);
  EXPECT_EQ(to_json(plan), document);
}

TEST(EditablePlan, GroupedQueryAttentionKeepsItsGroups) {
  Json document = initial_plan("llama3-8b");
  document["model"]["num-attention-heads"] = 64;  // 8 groups still divide 64 heads
  document["model"]["hidden-size"] = 8192;
  EXPECT_EQ(plan_from_json(document).model.query_groups(), 8);
  document["model"]["num-attention-heads"] = 12;
  document["model"]["hidden-size"] = 768;
  EXPECT_THAT(refusal(document),
              HasSubstr("num-query-groups=8 does not divide num-attention-heads=12"));
}

TEST(EditablePlan, AnOlderPlanReadsBackExactlyAndMeansWhatItMeant) {
  const Json document = parse_json_text(kOlderPlan, "older plan");
  const Plan plan = plan_from_json(document);
  EXPECT_EQ(plan.model.padded_vocab_size, 50432);
  EXPECT_FALSE(plan.model.vocab_size.has_value());
  EXPECT_EQ(plan.model.num_query_groups, 12);
  EXPECT_EQ(plan.padded_vocab_size(), 50432);
  // It predates Megatron-Core's settings and runs as Loom ran it then.
  EXPECT_EQ(plan.parallel.attention_backend, AttentionBackend::unfused);
  EXPECT_FALSE(plan.parallel.overlap_grad_reduce || plan.parallel.overlap_param_gather || plan.parallel.tp_comm_overlap);
  EXPECT_FALSE(plan.parallel.ddp_bucket_size.has_value());
  // The same keys in the same order, then those settings, spelled out with that meaning.
  Json expected = document;
  expected["parallel"]["attention-backend"] = "unfused";
  expected["parallel"]["overlap-grad-reduce"] = false;
  expected["parallel"]["overlap-param-gather"] = false;
  expected["parallel"]["tp-comm-overlap"] = false;
  expected["parallel"]["ddp-bucket-size"] = nullptr;
  EXPECT_EQ(to_json(plan).dump(2), expected.dump(2));
  EXPECT_EQ(plan_from_json(to_json(plan)), plan);
}

TEST(EditablePlan, AnOlderPlanStillPinsItsSizes) {
  Json document = parse_json_text(kOlderPlan, "older plan");
  document["parallel"]["tensor-model-parallel-size"] = 4;
  document["model"]["padded-vocab-size"] = 50257;
  EXPECT_THAT(refusal(document),
              HasSubstr("tensor-model-parallel-size=4 does not divide padded-vocab-size=50257; pad "
                        "the vocabulary to "
                        "a multiple of 512 (e.g. 50688), or give vocab-size instead"));
  document = parse_json_text(kOlderPlan, "older plan");
  document["model"]["num-attention-heads"] = 16;
  EXPECT_THAT(refusal(document),
              HasSubstr("num-query-groups=12 does not divide num-attention-heads=16; leave "
                        "num-query-groups out for one group per head"));
  document["model"].erase("num-query-groups");
  EXPECT_EQ(refusal(document), "(valid)");
}

TEST(EditablePlan, BothVocabularyFormsTogetherPinTheRows) {
  Json document = parse_json_text(kOlderPlan, "older plan");
  document["model"]["vocab-size"] = 50257;
  document["model"]["padded-vocab-size"] = 50304;  // llm.c's GPT-2
  const Plan plan = plan_from_json(document);
  EXPECT_EQ(plan.padded_vocab_size(), 50304);
  EXPECT_EQ(plan.model.vocab_size, 50257);
  const Json written = to_json(plan);
  EXPECT_EQ(written["model"]["vocab-size"], 50257);
  EXPECT_EQ(written["model"]["padded-vocab-size"], 50304);
  EXPECT_FALSE(written["model"].contains("make-vocab-size-divisible-by"));
  EXPECT_EQ(plan_from_json(written), plan);

  document["model"]["padded-vocab-size"] = 50000;
  EXPECT_THAT(refusal(document),
              HasSubstr("padded-vocab-size=50000 is smaller than vocab-size=50257"));
  document["model"]["padded-vocab-size"] = 50304;
  document["model"]["make-vocab-size-divisible-by"] = 128;
  EXPECT_THAT(refusal(document), HasSubstr("model.make-vocab-size-divisible-by has no effect when "
                                           "model.padded-vocab-size is given"));
}

TEST(EditablePlan, TheDerivedFormRoundTripsWithItsDivisor) {
  Json document = initial_plan("gpt2-124m");
  document["model"].erase("make-vocab-size-divisible-by");  // Megatron's default, 128
  const Plan plan = plan_from_json(document);
  EXPECT_EQ(plan.model.make_vocab_size_divisible_by, 128);
  EXPECT_EQ(to_json(plan), initial_plan("gpt2-124m"));  // written out again
  document = initial_plan("gpt2-124m");
  document["model"]["make-vocab-size-divisible-by"] = 64;
  document["parallel"]["tensor-model-parallel-size"] = 2;
  const Plan sixty_four = plan_from_json(document);
  EXPECT_EQ(sixty_four.padded_vocab_size(), 50304);  // 128 · 393
  EXPECT_EQ(to_json(sixty_four)["model"], document["model"]);
}

TEST(EditablePlan, AModelWithoutAVocabularyIsRefusedNamingBothForms) {
  Json document = initial_plan("gpt2-124m");
  document["model"].erase("vocab-size");
  document["model"].erase("make-vocab-size-divisible-by");
  EXPECT_THAT(refusal(document),
              HasSubstr("model.vocab-size is missing: give the tokenizer's vocabulary"));
  EXPECT_THAT(refusal(document), HasSubstr("or pin model.padded-vocab-size"));
}

}  // namespace
}  // namespace loom::core
