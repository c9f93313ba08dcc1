#include "core/model_arithmetic.hpp"
#include "core/model_presets.hpp"

#include <gtest/gtest.h>

namespace loom::core {
namespace {

int64_t preset_parameters(std::string_view name) { return parameter_count(find_model_preset(name).spec); }

// Published exact counts: GPT-2 from OpenAI's checkpoints (llm.c prints 124,439,808 for 124M),
// Llama from Meta's released checkpoints (sum of tensor sizes).
TEST(ParameterCount, MatchesPublishedCheckpoints) {
  EXPECT_EQ(preset_parameters("gpt2-124m"), 124'439'808);
  EXPECT_EQ(preset_parameters("gpt2-350m"), 354'823'168);
  EXPECT_EQ(preset_parameters("gpt2-774m"), 774'030'080);
  EXPECT_EQ(preset_parameters("gpt2-1.5b"), 1'557'611'200);
  EXPECT_EQ(preset_parameters("llama2-7b"), 6'738'415'616);
  EXPECT_EQ(preset_parameters("llama2-13b"), 13'015'864'320);
  EXPECT_EQ(preset_parameters("llama2-70b"), 68'976'648'192);
  EXPECT_EQ(preset_parameters("llama3-8b"), 8'030'261'248);
  EXPECT_EQ(preset_parameters("llama3-70b"), 70'553'706'496);
  EXPECT_EQ(preset_parameters("llama3-405b"), 405'853'388'800);
}

TEST(ParameterCount, MegatronClosedFormDiffersOnlyByTheFinalNorm) {
  // 12Lh² + 13Lh + (V+s)h counts everything but the final LayerNorm's 2h.
  for (std::string_view name : {"gpt2-124m", "gpt3-175b", "megatron-1t"}) {
    const ModelSpec& m = find_model_preset(name).spec;
    EXPECT_DOUBLE_EQ(megatron_parameter_estimate(m) + 2.0 * double(m.hidden_size), double(parameter_count(m)))
        << name;
  }
}

// Narayanan et al. (SC21) Table 1 lists each model's size in billions; the closed form must
// reproduce every one to the printed precision.
TEST(ParameterCount, ReproducesMegatronTable1Sizes) {
  const std::pair<std::string_view, double> table1[] = {
      {"megatron-1.7b", 1.7},     {"megatron-3.6b", 3.6},     {"megatron-7.5b", 7.5},
      {"megatron-18.4b", 18.4},   {"megatron-39.1b", 39.1},   {"megatron-76.1b", 76.1},
      {"megatron-145.6b", 145.6}, {"megatron-310.1b", 310.1}, {"megatron-529.6b", 529.6},
      {"megatron-1t", 1008.0}};
  for (const auto& [name, billions] : table1) {
    const double estimate = megatron_parameter_estimate(find_model_preset(name).spec) / 1e9;
    EXPECT_NEAR(estimate, billions, billions < 1000 ? 0.05 : 0.5) << name;
  }
}

TEST(ModelFlops, EqualsMegatronFormulaForGptModels) {
  for (std::string_view name : {"gpt2-124m", "gpt3-13b", "gpt3-175b", "megatron-529.6b"}) {
    const ModelSpec& m = find_model_preset(name).spec;
    for (int64_t batch : {1, 512, 1536}) {
      EXPECT_NEAR(model_flops_per_step(m, batch) / megatron_model_flops_per_step(m, batch), 1.0, 1e-12)
          << name << " B=" << batch;
      EXPECT_NEAR(hardware_flops_per_step(m, batch, Recompute::full) /
                      megatron_full_recompute_flops_per_step(m, batch),
                  1.0, 1e-12)
          << name;
    }
  }
}

TEST(ModelFlops, GptThree175BMatchesTheRuleOfSixForItsTokens) {
  // 6·N·tokens is the familiar approximation; with s = 2048 the attention term adds s/(6h) ≈ 2.8 %.
  const ModelSpec& m = find_model_preset("gpt3-175b").spec;
  const double six_n_d = 6.0 * double(parameter_count(m)) * 2048.0;
  EXPECT_NEAR(model_flops_per_step(m, 1) / six_n_d, 1.0 + 2048.0 / (6.0 * 12288.0), 0.01);
}

TEST(ModelFlops, RecomputeAddsTheRecomputedForward) {
  const ModelSpec& m = find_model_preset("gpt3-1.3b").spec;
  const double model = model_flops_per_step(m, 8);
  const double attention_core = 8.0 * 2048 * m.num_layers * 4.0 * 2048 * m.hidden_size;
  EXPECT_DOUBLE_EQ(hardware_flops_per_step(m, 8, Recompute::none), model);
  EXPECT_DOUBLE_EQ(hardware_flops_per_step(m, 8, Recompute::selective), model + attention_core);
  EXPECT_GT(hardware_flops_per_step(m, 8, Recompute::full), hardware_flops_per_step(m, 8, Recompute::selective));
}

TEST(StageParameters, SumToTheModelWithoutParallelism) {
  Plan plan;
  plan.model = find_model_preset("gpt2-124m").spec;
  plan.model.padded_vocab_size = 50257;  // pinned as published (tp 1 would pad it to 50304)
  EXPECT_EQ(parameters_per_device_by_stage(plan), std::vector<int64_t>{124'439'808});
  EXPECT_EQ(parameters_per_device_by_stage(plan)[0], parameter_count(plan.model));
}

TEST(StageParameters, ShardOverTensorAndSplitOverPipeline) {
  Plan plan;
  plan.model = find_model_preset("gpt2-124m").spec;
  plan.model.padded_vocab_size = 50304;
  plan.parallel.tensor_parallel = 2;
  plan.parallel.pipeline_parallel = 2;
  const std::vector<int64_t> stages = parameters_per_device_by_stage(plan);
  ASSERT_EQ(stages.size(), 2u);
  const int64_t h = 768, vocab_shard = 50304 * h / 2;
  // Per layer: sharded weights and column biases / 2, plus 2 LayerNorms and 2 row biases whole.
  const int64_t layer = (12 * h * h + 3 * h + 4 * h) / 2 + 4 * h + 2 * h;
  EXPECT_EQ(stages[0], 6 * layer + vocab_shard + 1024 * h);
  EXPECT_EQ(stages[1], 6 * layer + 2 * h + vocab_shard);  // final norm + tied embedding copy
}

}  // namespace
}  // namespace loom::core
