// GPT-2's and Llama's parameters on one rank: the Hugging Face names and order that checkpoints and model
// files depend on, what each kind means for initialisation, weight decay and the gradient norm,
// and the per-layer references the forward and backward use instead of names.

#include "core/error.hpp"
#include "executor/model/parameters.hpp"
#include "executor/model/gpt2_parameters.hpp"
#include "executor/model/llama_parameters.hpp"
#include "executor/model/model_parameters.hpp"

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
  const LayerParameters layer = layer_parameters(store, small_model(), 0);
  for (const NormParameters* norm : {&layer.norm_1, &layer.norm_2}) {
    EXPECT_EQ(norm->gain->kind, ParameterKind::norm_gain) << norm->gain->name;
    ASSERT_NE(norm->bias, nullptr) << norm->gain->name;
    EXPECT_EQ(norm->bias->kind, ParameterKind::bias) << norm->bias->name;
  }
  for (const LinearParameters* linear : {&layer.qkv, &layer.projection, &layer.fc, &layer.fc_out}) {
    ASSERT_EQ(linear->weights.size(), 1u);
    EXPECT_EQ(linear->weights[0]->kind, ParameterKind::weight) << linear->weights[0]->name;
    EXPECT_FALSE(linear->out_major) << linear->weights[0]->name;  // Conv1D: [in, out]
    ASSERT_NE(linear->bias, nullptr);
    EXPECT_EQ(linear->bias->kind, ParameterKind::bias) << linear->bias->name;
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
  EXPECT_EQ(output.norm.gain, &store["ln_f.weight"]);
  EXPECT_EQ(output.norm.bias, &store["ln_f.bias"]);
}

TEST(Gpt2Parameters, TiedOutputLayerIsTheEmbedding) {
  ParameterStore store;
  declare_gpt2_parameters(store, small_model(), {0, 1}, true, true);
  store.finalize(0, 1, kSeed, 1, test_kernels(), ElementType::f32);
  EXPECT_EQ(&output_parameters(store, small_model()).head, &store["wte.weight"]);
  const EmbeddingParameters embedding = embedding_parameters(store, small_model());
  EXPECT_EQ(&embedding.tokens, &store["wte.weight"]);
  EXPECT_EQ(embedding.positions, &store["wpe.weight"]);
}

TEST(Gpt2Parameters, ReplicatedParametersCountInTheNormOnTensorRankZeroOnly) {
  for (const int64_t tensor_rank : {0, 1}) {
    ParameterStore store;
    declare_gpt2_parameters(store, small_model(), {0}, true, true);
    store.finalize(tensor_rank, 2, kSeed, 1, test_kernels(), ElementType::f32);
    for (const Parameter& p : store.all()) {
      const bool expected = p.sharding != Sharding::replicated || tensor_rank == 0;
      EXPECT_EQ(p.counts_in_norm, expected) << p.name << " on tensor rank " << tensor_rank;
      // The parameter's elements lie in one of the norm's runs exactly when it counts.
      const auto& runs = store.norm_runs();
      const bool in_a_run = std::any_of(runs.begin(), runs.end(), [&](const std::pair<int64_t, int64_t>& run) {
        return run.first <= p.offset && p.offset + p.value.numel() <= run.second;
      });
      const bool touches_a_run = std::any_of(runs.begin(), runs.end(), [&](const std::pair<int64_t, int64_t>& run) {
        return run.first < p.offset + p.value.numel() && p.offset < run.second;
      });
      EXPECT_EQ(in_a_run, expected) << p.name;
      EXPECT_EQ(touches_a_run, expected) << p.name;
    }
  }
}

TEST(Gpt2Parameters, LayerReferencesAreTheNamedParameters) {
  ParameterStore store;
  declare_gpt2_parameters(store, small_model(), {0, 1}, false, false);
  store.finalize(0, 1, kSeed, 1, test_kernels(), ElementType::f32);
  const LayerParameters layer = layer_parameters(store, small_model(), 1);
  const std::vector<std::pair<const Parameter*, std::string>> expected = {
      {layer.norm_1.gain, "h.1.ln_1.weight"},
      {layer.norm_1.bias, "h.1.ln_1.bias"},
      {layer.qkv.weights[0], "h.1.attn.c_attn.weight"},
      {layer.qkv.bias, "h.1.attn.c_attn.bias"},
      {layer.projection.weights[0], "h.1.attn.c_proj.weight"},
      {layer.projection.bias, "h.1.attn.c_proj.bias"},
      {layer.norm_2.gain, "h.1.ln_2.weight"},
      {layer.norm_2.bias, "h.1.ln_2.bias"},
      {layer.fc.weights[0], "h.1.mlp.c_fc.weight"},
      {layer.fc.bias, "h.1.mlp.c_fc.bias"},
      {layer.fc_out.weights[0], "h.1.mlp.c_proj.weight"},
      {layer.fc_out.bias, "h.1.mlp.c_proj.bias"}};
  for (const auto& [parameter, name] : expected) EXPECT_EQ(parameter, &store[name]) << name;
  // The layer's parameters in declaration order: what the hooks and buckets see.
  std::vector<std::string> order;
  for (const Parameter* p : parameters_of(layer)) order.push_back(p->name);
  std::vector<std::string> declared;
  for (const auto& entry : expected) declared.push_back(entry.second);
  EXPECT_EQ(order, declared);
}


core::ModelSpec small_llama(bool untied = true) {
  core::ModelSpec m = small_model(untied);
  m.name = "parameters-test-llama";
  m.num_attention_heads = 4;  // head_dim 2
  m.num_query_groups = 2;
  m.activation = core::Activation::swiglu;
  m.normalization = core::Normalization::rmsnorm;
  m.position_embedding = core::PositionEmbedding::rope;
  m.add_bias_linear = false;
  return m;
}

TEST(LlamaParameters, HuggingFaceNamesAndShapesInBufferOrder) {
  ParameterStore store;
  declare_model_parameters(store, small_llama(), {1}, /*has_embedding=*/true, /*has_output_layer=*/true);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"model.embed_tokens.weight", {32, 8}},
      {"model.layers.1.input_layernorm.weight", {8}},
      {"model.layers.1.self_attn.q_proj.weight", {8, 8}},
      {"model.layers.1.self_attn.k_proj.weight", {4, 8}},  // 2 groups of 2 channels
      {"model.layers.1.self_attn.v_proj.weight", {4, 8}},
      {"model.layers.1.self_attn.o_proj.weight", {8, 8}},
      {"model.layers.1.post_attention_layernorm.weight", {8}},
      {"model.layers.1.mlp.gate_proj.weight", {16, 8}},
      {"model.layers.1.mlp.up_proj.weight", {16, 8}},
      {"model.layers.1.mlp.down_proj.weight", {8, 16}},
      {"model.norm.weight", {8}},
      {"lm_head.weight", {32, 8}}};
  ASSERT_EQ(store.all().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(store.all()[i].name, expected[i].first);
    EXPECT_EQ(store.all()[i].full_shape, expected[i].second) << expected[i].first;
  }
  EXPECT_EQ(token_embedding_name(small_llama()), "model.embed_tokens.weight");
}

TEST(LlamaParameters, TiedLastStageCopyIsTheEmbedding) {
  ParameterStore store;
  declare_model_parameters(store, small_llama(/*untied=*/false), {1}, /*has_embedding=*/false, true);
  store.finalize(0, 1, kSeed, 1, test_kernels(), ElementType::f32);
  EXPECT_FALSE(store.contains("lm_head.weight"));
  EXPECT_EQ(store["model.embed_tokens.weight"].kind, ParameterKind::tied_embedding_copy);
  EXPECT_EQ(&output_parameters(store, small_llama(false)).head, &store["model.embed_tokens.weight"]);
}

// Under tp 2 each rank's q, k and v shards (and gate, up) lie side by side: one GEMM operand that
// is Megatron's fused [q_r; k_r; v_r], and its gradient likewise.
TEST(LlamaParameters, FusedProjectionsAreTheRanksShardsSideBySide) {
  for (const int64_t rank : {0, 1}) {
    ParameterStore store;
    declare_model_parameters(store, small_llama(), {0}, false, false);
    store.finalize(rank, 2, kSeed, 1, test_kernels(), ElementType::f32);
    const LayerParameters layer = layer_parameters(store, small_llama(), 0);
    EXPECT_EQ(layer.norm_1.bias, nullptr);
    EXPECT_EQ(layer.qkv.bias, nullptr);
    EXPECT_TRUE(layer.qkv.out_major);
    ASSERT_EQ(layer.qkv.weights.size(), 3u);
    EXPECT_EQ(layer.qkv.weight.shape(), (std::vector<int64_t>{4 + 2 + 2, 8}));  // (4 + 2·2)·2 / 2 rows
    std::vector<float> concatenated;
    for (const Parameter* p : layer.qkv.weights) {
      const std::vector<float> full = normal_values(kSeed, p->name, p->full_shape[0] * p->full_shape[1], p->init_std);
      const std::vector<float> mine = ParameterStore::shard(full, *p, rank, 2);
      concatenated.insert(concatenated.end(), mine.begin(), mine.end());
    }
    ASSERT_EQ(int64_t(concatenated.size()), layer.qkv.weight.numel());
    EXPECT_TRUE(std::equal(concatenated.begin(), concatenated.end(), layer.qkv.weight.data<float>()));
    EXPECT_EQ(layer.qkv.weight_grad.data<float>(), layer.qkv.weights[0]->grad.data<float>());
    EXPECT_EQ(layer.fc.weight.shape(), (std::vector<int64_t>{16, 8}));  // [gate_r; up_r], 8 rows each
    EXPECT_EQ(layer.fc.weight.data<float>(), layer.fc.weights[0]->value.data<float>());
    EXPECT_EQ(layer.fc_out.weight.shape(), (std::vector<int64_t>{8, 8}));  // down_proj's columns split
  }
}

TEST(LlamaParameters, JoiningRefusesParametersThatAreNotNeighbours) {
  ParameterStore store;
  declare_model_parameters(store, small_llama(), {0}, false, false);
  store.finalize(0, 1, kSeed, 1, test_kernels(), ElementType::f32);
  EXPECT_THROW(store.joined_values({&store["model.layers.0.self_attn.q_proj.weight"],
                                    &store["model.layers.0.self_attn.v_proj.weight"]}),
               Error);
}

TEST(ModelArchitecture, MixedFamiliesAreRefusedInOneLine) {
  core::ModelSpec m = small_llama();
  EXPECT_EQ(architecture_of(m), Architecture::llama);
  EXPECT_EQ(architecture_of(small_model()), Architecture::gpt2);
  m.activation = core::Activation::gelu;  // GELU with rotary positions: neither family
  try {
    architecture_of(m);
    FAIL() << "a GELU Llama was accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("mixes"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  core::ModelSpec grouped_gpt = small_model();
  grouped_gpt.num_query_groups = 1;
  EXPECT_THROW(architecture_of(grouped_gpt), InvalidInput);
}

}  // namespace
}  // namespace loom::exec
