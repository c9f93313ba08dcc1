// A plan's model as a Hugging Face config.json: the values transformers' LlamaConfig and
// GPT2Config read, taken from the plan (heads, groups, widths, rope theta, the padded vocabulary
// Loom's model files hold, tied or untied), and a refusal for a mix of the two families.

#include "planner/huggingface_config.hpp"

#include "core/error.hpp"
#include "core/model_presets.hpp"

#include <gtest/gtest.h>

namespace loom::plan {
namespace {

core::Plan plan_of(const std::string& preset, int64_t tp) {
  core::Plan plan;
  plan.model = core::find_model_preset(preset).spec;
  plan.cluster = {1, tp, "a100-80gb-dgx", std::nullopt, {}};
  plan.parallel.tensor_parallel = tp;
  plan.training.global_batch_size = 8;
  plan.validate();
  return plan;
}

TEST(HuggingFaceConfig, LlamaTakesTheGroupsTheRopeThetaAndTheUntiedHead) {
  const core::Json c = huggingface_config(plan_of("llama3-8b", 8));
  EXPECT_EQ(c.at("model_type"), "llama");
  EXPECT_EQ(c.at("architectures").at(0), "LlamaForCausalLM");
  EXPECT_EQ(c.at("num_hidden_layers"), 32);
  EXPECT_EQ(c.at("hidden_size"), 4096);
  EXPECT_EQ(c.at("num_attention_heads"), 32);
  EXPECT_EQ(c.at("num_key_value_heads"), 8);
  EXPECT_EQ(c.at("head_dim"), 128);
  EXPECT_EQ(c.at("intermediate_size"), 14336);
  EXPECT_EQ(c.at("rope_theta"), 500000);
  EXPECT_EQ(c.at("vocab_size"), 129024);  // 128,256 padded to a multiple of 128 × 8, as the files hold
  EXPECT_EQ(c.at("tie_word_embeddings"), false);
  EXPECT_EQ(c.at("hidden_act"), "silu");
  EXPECT_EQ(c.at("attention_bias"), false);
  EXPECT_EQ(c.at("torch_dtype"), "bfloat16");
  EXPECT_EQ(huggingface_config(plan_of("llama2-7b", 1)).at("rope_theta"), 10000);
}

TEST(HuggingFaceConfig, Gpt2IsTiedWithTheTanhGelu) {
  const core::Json c = huggingface_config(plan_of("loom-tiny", 1));
  EXPECT_EQ(c.at("model_type"), "gpt2");
  EXPECT_EQ(c.at("n_layer"), 4);
  EXPECT_EQ(c.at("n_embd"), 128);
  EXPECT_EQ(c.at("n_head"), 4);
  EXPECT_EQ(c.at("n_inner"), 512);
  EXPECT_EQ(c.at("n_positions"), 64);
  EXPECT_EQ(c.at("vocab_size"), 256);
  EXPECT_EQ(c.at("activation_function"), "gelu_new");
  EXPECT_EQ(c.at("tie_word_embeddings"), true);
}

TEST(HuggingFaceConfig, AMixOfTheFamiliesIsRefused) {
  core::Plan plan = plan_of("loom-tiny-llama", 1);
  plan.model.activation = core::Activation::gelu;
  EXPECT_THROW(huggingface_config(plan), InvalidInput);
}

}  // namespace
}  // namespace loom::plan
