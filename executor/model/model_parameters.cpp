#include "executor/model/model_parameters.hpp"

#include "core/error.hpp"
#include "executor/model/gpt2_parameters.hpp"
#include "executor/model/llama_parameters.hpp"

namespace loom::exec {

Architecture architecture_of(const core::ModelSpec& m) {
  const core::ModelFamily family = m.family();
  if (family != core::ModelFamily::mixed) return family;
  const bool gelu = m.activation == core::Activation::gelu;
  throw InvalidInput(
      "the executor trains two architectures: GPT-2's (GELU, LayerNorm, learned positions, biases, one key/value "
      "head per query head) and Llama's (SwiGLU, RMSNorm, rope, no biases, any num-query-groups); model '{}' mixes "
      "them ({}, {}, {}, add-bias-linear {}, {} query groups for {} heads)",
      m.name, gelu ? "GELU" : "SwiGLU", core::to_string(m.normalization), core::to_string(m.position_embedding),
      m.add_bias_linear, m.query_groups(), m.num_attention_heads);
}

void declare_model_parameters(ParameterStore& parameters, const core::ModelSpec& model,
                              const std::vector<int64_t>& layers, bool has_embedding, bool has_output_layer) {
  if (architecture_of(model) == Architecture::gpt2)
    declare_gpt2_parameters(parameters, model, layers, has_embedding, has_output_layer);
  else
    declare_llama_parameters(parameters, model, layers, has_embedding, has_output_layer);
}

std::string token_embedding_name(const core::ModelSpec& model) {
  return architecture_of(model) == Architecture::gpt2 ? "wte.weight" : "model.embed_tokens.weight";
}

namespace {

LinearParameters linear(ParameterStore& store, std::vector<Parameter*> weights, Parameter* bias, bool out_major) {
  LinearParameters l;
  l.weights = std::move(weights);
  l.bias = bias;
  l.out_major = out_major;
  if (l.weights.size() == 1) {
    l.weight = l.weights.front()->value;
    l.weight_grad = l.weights.front()->grad;
  } else {
    l.weight = store.joined_values(l.weights);
    l.weight_grad = store.joined_grads(l.weights);
  }
  return l;
}

}  // namespace

LayerParameters layer_parameters(ParameterStore& p, const core::ModelSpec& model, int64_t layer) {
  if (architecture_of(model) == Architecture::gpt2) {
    auto at = [&](std::string_view part) { return &p[gpt2_layer_parameter_name(layer, part)]; };
    auto conv1d = [&](std::string_view module) {
      const std::string m(module);
      return linear(p, {at(m + ".weight")}, at(m + ".bias"), /*out_major=*/false);
    };
    return LayerParameters{{at("ln_1.weight"), at("ln_1.bias")},   conv1d("attn.c_attn"), conv1d("attn.c_proj"),
                           {at("ln_2.weight"), at("ln_2.bias")},   conv1d("mlp.c_fc"),    conv1d("mlp.c_proj")};
  }
  auto at = [&](std::string_view part) { return &p[llama_layer_parameter_name(layer, part)]; };
  auto nn_linear = [&](std::vector<Parameter*> weights) {
    return linear(p, std::move(weights), nullptr, /*out_major=*/true);
  };
  return LayerParameters{
      {at("input_layernorm.weight"), nullptr},
      nn_linear({at("self_attn.q_proj.weight"), at("self_attn.k_proj.weight"), at("self_attn.v_proj.weight")}),
      nn_linear({at("self_attn.o_proj.weight")}),
      {at("post_attention_layernorm.weight"), nullptr},
      nn_linear({at("mlp.gate_proj.weight"), at("mlp.up_proj.weight")}),
      nn_linear({at("mlp.down_proj.weight")})};
}

std::vector<Parameter*> parameters_of(const LayerParameters& l) {
  std::vector<Parameter*> out;
  auto norm = [&](const NormParameters& n) {
    out.push_back(n.gain);
    if (n.bias) out.push_back(n.bias);
  };
  auto linear = [&](const LinearParameters& x) {
    out.insert(out.end(), x.weights.begin(), x.weights.end());
    if (x.bias) out.push_back(x.bias);
  };
  norm(l.norm_1);
  linear(l.qkv);
  linear(l.projection);
  norm(l.norm_2);
  linear(l.fc);
  linear(l.fc_out);
  return out;
}

EmbeddingParameters embedding_parameters(ParameterStore& p, const core::ModelSpec& model) {
  if (architecture_of(model) == Architecture::gpt2) return EmbeddingParameters{p["wte.weight"], &p["wpe.weight"]};
  return EmbeddingParameters{p["model.embed_tokens.weight"], nullptr};
}

OutputParameters output_parameters(ParameterStore& p, const core::ModelSpec& model) {
  Parameter& head = p[model.untie_embeddings_and_output_weights ? "lm_head.weight" : token_embedding_name(model)];
  if (architecture_of(model) == Architecture::gpt2)
    return OutputParameters{{&p["ln_f.weight"], &p["ln_f.bias"]}, head};
  return OutputParameters{{&p["model.norm.weight"], nullptr}, head};
}

}  // namespace loom::exec
