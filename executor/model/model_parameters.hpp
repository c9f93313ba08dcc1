#pragma once
// The model families the executor trains, and their parameters grouped as the layers use them
// (llm.c's ParameterTensors), resolved once from a finalized store so that the forward and
// backward never look a name up. GPT-2 and Llama share one transformer layer (gpt_layers.cpp);
// what differs is read off these references: which norm, which weight layout, biases or none.

#include "core/model_spec.hpp"
#include "executor/model/parameters.hpp"

#include <string>
#include <vector>

namespace loom::exec {

// core::ModelSpec::family(), gpt2 or llama (never mixed here).
using Architecture = core::ModelFamily;

// The family of a model, or InvalidInput naming what the executor cannot train (a mix of the
// two, such as GELU with rotary positions).
Architecture architecture_of(const core::ModelSpec& model);

// Declares the parameters of the given layers (and of the embedding and output layer where
// asked) in the family's Hugging Face names, in the order of the flat buffers.
void declare_model_parameters(ParameterStore& parameters, const core::ModelSpec& model,
                              const std::vector<int64_t>& layers, bool has_embedding, bool has_output_layer);

// The token embedding's name ("wte.weight", "model.embed_tokens.weight"): also the tied output
// layer's, and the name of the last stage's copy of it.
std::string token_embedding_name(const core::ModelSpec& model);

// A norm's gain, and its bias (LayerNorm) or null (RMSNorm).
struct NormParameters {
  Parameter* gain = nullptr;
  Parameter* bias = nullptr;
};

// A linear layer as the kernels read it. `weight` is one parameter's value, or the side-by-side
// shards of consecutive ones (Llama's q|k|v and gate|up); `weight_grad` its gradient likewise.
// GPT-2's Conv1D stores [in, out] (y = x·W); nn.Linear stores [out, in] (y = x·Wᵀ).
struct LinearParameters {
  std::vector<Parameter*> weights;
  Parameter* bias = nullptr;
  bool out_major = false;
  Tensor weight;
  Tensor weight_grad;
};

struct LayerParameters {
  NormParameters norm_1;
  LinearParameters qkv, projection;
  NormParameters norm_2;
  LinearParameters fc, fc_out;  // fc: GELU's input, or SwiGLU's fused [gate | up]
};

// A layer's parameters in declaration order.
std::vector<Parameter*> parameters_of(const LayerParameters& layer);

// The first stage's token embedding, and GPT-2's learned positions (null with rotary ones).
struct EmbeddingParameters {
  Parameter& tokens;
  Parameter* positions = nullptr;
};

// The last stage's final norm and output layer ("lm_head.weight" when untied, otherwise the tied
// embedding: the stage's own copy when it is not also the first).
struct OutputParameters {
  NormParameters norm;
  Parameter& head;
};

// References into a finalized store, valid as long as it lives (its parameters never move).
LayerParameters layer_parameters(ParameterStore& parameters, const core::ModelSpec& model, int64_t layer);
EmbeddingParameters embedding_parameters(ParameterStore& parameters, const core::ModelSpec& model);
OutputParameters output_parameters(ParameterStore& parameters, const core::ModelSpec& model);

}  // namespace loom::exec
