// GPT-2's parameters on one rank: the Hugging Face names and order that checkpoints and model
// files depend on, what each kind means for initialisation, weight decay and the gradient norm,
// and the per-layer references the forward and backward use instead of names.

#include "executor/model/parameters.hpp"
#include "executor/model/gpt2_parameters.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace loom::exec {
namespace {

// The CPU kernels the stores are finalized with (parameter values live on the CPU).
Kernels& test_kernels() {
  static std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  return *kernels;
}


constexpr uint64_t kSeed = 1234;

core::ModelSpec small_model(bool untied = false) {
  core::ModelSpec m;
  m.name = "parameters-test";
  m.num_layers = 2;
  m.hidden_size = 8;
  m.num_attention_heads = 2;
  m.ffn_hidden_size = 16;
  m.padded_vocab_size = 32;
  m.seq_length = 4;
  m.untie_embeddings_and_output_weights = untied;
  return m;
}

std::vector<std::string> names(const ParameterStore& store) {
  std::vector<std::string> out;
  for (const Parameter& p : store.all()) out.push_back(p.name);
  return out;
}

bool all_equal(const Tensor& t, float value) {
  const float* v = t.data<float>();
  return std::all_of(v, v + t.numel(), [&](float x) { return x == value; });
}

TEST(Gpt2Parameters, HuggingFaceNamesInBufferOrder) {
  ParameterStore store;
  declare_gpt2_parameters(store, small_model(), {1}, /*has_embedding=*/true,
                          /*has_output_layer=*/true);
  const std::vector<std::string> expected = {"wte.weight",
                                             "wpe.weight",
                                             "h.1.ln_1.weight",
                                             "h.1.ln_1.bias",
                                             "h.1.attn.c_attn.weight",
                                             "h.1.attn.c_attn.bias",
                                             "h.1.attn.c_proj.weight",
                                             "h.1.attn.c_proj.bias",
                                             "h.1.ln_2.weight",
                                             "h.1.ln_2.bias",
                                             "h.1.mlp.c_fc.weight",
                                             "h.1.mlp.c_fc.bias",
                                             "h.1.mlp.c_proj.weight",
                                             "h.1.mlp.c_proj.bias",
                                             "ln_f.weight",
                                             "ln_f.bias"};
  EXPECT_EQ(names(store), expected);
}

TEST(Gpt2Parameters, KindsOfALayer) {
  ParameterStore store;
  declare_gpt2_parameters(store, small_model(), {0}, false, false);
  store.finalize(0, 1, kSeed, 1, test_kernels(), ElementType::f32);
  const LayerParameters layer = layer_parameters(store, 0);
  for (const WeightAndBias* norm : {&layer.ln_1, &layer.ln_2}) {
    EXPECT_EQ(norm->weight.kind, ParameterKind::norm_gain) << norm->weight.name;
    EXPECT_EQ(norm->bias.kind, ParameterKind::bias) << norm->bias.name;
  }
  for (const WeightAndBias* linear :
       {&layer.attn_c_attn, &layer.attn_c_proj, &layer.mlp_c_fc, &layer.mlp_c_proj}) {
    EXPECT_EQ(linear->weight.kind, ParameterKind::weight) << linear->weight.name;
    EXPECT_EQ(linear->bias.kind, ParameterKind::bias) << linear->bias.name;
  }
}

TEST(Gpt2Parameters, KindDecidesInitialisation) {
  ParameterStore store;
  declare_gpt2_parameters(store, small_model(), {0}, true, false);
  store.finalize(0, 1, kSeed, 1, test_kernels(), ElementType::f32);
  for (const Parameter& p : store.all()) {
    switch (p.kind) {
      case ParameterKind::norm_gain:
        EXPECT_TRUE(all_equal(p.value, 1.0f)) << p.name;
        break;
      case ParameterKind::bias:
        EXPECT_TRUE(all_equal(p.value, 0.0f)) << p.name;
        break;
      case ParameterKind::weight:
      case ParameterKind::tied_embedding_copy: {
        const std::vector<float> expected =
            normal_values(kSeed, p.name, p.value.numel(), p.init_std);
        EXPECT_TRUE(std::equal(expected.begin(), expected.end(), p.value.data<float>())) << p.name;
        break;
      }
    }
  }
  // GPT-2's: 0.02, and 0.02/√(2L) for the projections into the residual stream.
  const float residual_std = 0.02f / std::sqrt(2.0f * 2.0f);
  EXPECT_EQ(store["wte.weight"].init_std, 0.02f);
  EXPECT_EQ(store["h.0.attn.c_attn.weight"].init_std, 0.02f);
  EXPECT_EQ(store["h.0.attn.c_proj.weight"].init_std, residual_std);
  EXPECT_EQ(store["h.0.mlp.c_proj.weight"].init_std, residual_std);
}

TEST(ParameterKind, WeightDecayForMatricesOnly) {
  EXPECT_TRUE(takes_weight_decay(ParameterKind::weight));
  EXPECT_TRUE(takes_weight_decay(ParameterKind::tied_embedding_copy));
  EXPECT_FALSE(takes_weight_decay(ParameterKind::bias));
  EXPECT_FALSE(takes_weight_decay(ParameterKind::norm_gain));
}

TEST(Gpt2Parameters, TheLastStagesTiedCopyIsLeftOutOfTheNorm) {
  ParameterStore store;
  declare_gpt2_parameters(store, small_model(), {1}, /*has_embedding=*/false,
                          /*has_output_layer=*/true);
  store.finalize(0, 1, kSeed, 1, test_kernels(), ElementType::f32);
  const Parameter& copy = store["wte.weight"];
  EXPECT_EQ(copy.kind, ParameterKind::tied_embedding_copy);
  EXPECT_FALSE(copy.counts_in_norm);
  // Initialised as the first stage's wte, so both copies start equal.
  const std::vector<float> expected = normal_values(kSeed, "wte.weight", copy.value.numel(), 0.02f);
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), copy.value.data<float>()));
  EXPECT_TRUE(store["ln_f.weight"].counts_in_norm);
}

TEST(Gpt2Parameters, UntiedLastStageHasItsOwnOutputLayer) {
  ParameterStore store;
  declare_gpt2_parameters(store, small_model(/*untied=*/true), {1}, false, true);
  store.finalize(0, 1, kSeed, 1, test_kernels(), ElementType::f32);
  EXPECT_FALSE(store.contains("wte.weight"));
  const OutputParameters output = output_parameters(store, small_model(true));
  EXPECT_EQ(&output.head, &store["lm_head.weight"]);
  EXPECT_EQ(output.head.kind, ParameterKind::weight);
  EXPECT_TRUE(output.head.counts_in_norm);
  EXPECT_EQ(&output.ln_f.weight, &store["ln_f.weight"]);
  EXPECT_EQ(&output.ln_f.bias, &store["ln_f.bias"]);
}

TEST(Gpt2Parameters, TiedOutputLayerIsTheEmbedding) {
  ParameterStore store;
  declare_gpt2_parameters(store, small_model(), {0, 1}, true, true);
  store.finalize(0, 1, kSeed, 1, test_kernels(), ElementType::f32);
  EXPECT_EQ(&output_parameters(store, small_model()).head, &store["wte.weight"]);
  const EmbeddingParameters embedding = embedding_parameters(store);
  EXPECT_EQ(&embedding.wte, &store["wte.weight"]);
  EXPECT_EQ(&embedding.wpe, &store["wpe.weight"]);
}

TEST(Gpt2Parameters, ReplicatedParametersCountInTheNormOnTensorRankZeroOnly) {
  for (const int64_t tensor_rank : {0, 1}) {
    ParameterStore store;
    declare_gpt2_parameters(store, small_model(), {0}, true, true);
    store.finalize(tensor_rank, 2, kSeed, 1, test_kernels(), ElementType::f32);
    for (const Parameter& p : store.all()) {
      const bool expected = p.sharding != Sharding::replicated || tensor_rank == 0;
      EXPECT_EQ(p.counts_in_norm, expected) << p.name << " on tensor rank " << tensor_rank;
      const float weight = expected ? 1.0f : 0.0f;
      const float* weights = store.norm_weights().data<float>();
      EXPECT_TRUE(std::all_of(weights + p.offset, weights + p.offset + p.value.numel(),
                              [&](float w) { return w == weight; }))
          << p.name;
    }
  }
}

TEST(Gpt2Parameters, LayerReferencesAreTheNamedParameters) {
  ParameterStore store;
  declare_gpt2_parameters(store, small_model(), {0, 1}, false, false);
  store.finalize(0, 1, kSeed, 1, test_kernels(), ElementType::f32);
  const LayerParameters layer = layer_parameters(store, 1);
  const std::vector<std::pair<const Parameter*, std::string>> expected = {
      {&layer.ln_1.weight, "h.1.ln_1.weight"},
      {&layer.ln_1.bias, "h.1.ln_1.bias"},
      {&layer.attn_c_attn.weight, "h.1.attn.c_attn.weight"},
      {&layer.attn_c_attn.bias, "h.1.attn.c_attn.bias"},
      {&layer.attn_c_proj.weight, "h.1.attn.c_proj.weight"},
      {&layer.attn_c_proj.bias, "h.1.attn.c_proj.bias"},
      {&layer.ln_2.weight, "h.1.ln_2.weight"},
      {&layer.ln_2.bias, "h.1.ln_2.bias"},
      {&layer.mlp_c_fc.weight, "h.1.mlp.c_fc.weight"},
      {&layer.mlp_c_fc.bias, "h.1.mlp.c_fc.bias"},
      {&layer.mlp_c_proj.weight, "h.1.mlp.c_proj.weight"},
      {&layer.mlp_c_proj.bias, "h.1.mlp.c_proj.bias"}};
  for (const auto& [parameter, name] : expected) EXPECT_EQ(parameter, &store[name]) << name;
}

}  // namespace
}  // namespace loom::exec
