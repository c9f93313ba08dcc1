#pragma once
// GPT-2's parameters as a rank holds them: their declaration (Hugging Face GPT-2 names, full
// shapes, sharding, kinds and initialisation), and, once the store is finalized, references to
// them grouped as the layers use them (llm.c's ParameterTensors), resolved once so that the
// forward and backward never look a name up.

#include "core/model_spec.hpp"
#include "executor/model/parameters.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace loom::exec {

// Hugging Face GPT-2's name of a layer's parameter or module: "h.3.attn.c_proj.weight".
std::string gpt2_layer_parameter_name(int64_t layer, std::string_view part);

// Declares the parameters of the given layers, and of the embedding and the output layer where
// asked, in the order of the flat buffers (which checkpoints store).
void declare_gpt2_parameters(ParameterStore& parameters, const core::ModelSpec& model,
                             const std::vector<int64_t>& layers, bool has_embedding,
                             bool has_output_layer);

// A Hugging Face module's pair ("….weight", "….bias"); a LayerNorm's weight is its gain.
struct WeightAndBias {
  Parameter& weight;
  Parameter& bias;
};

// One transformer layer's parameters, each member named after its Hugging Face module:
// attn_c_attn is "h.<layer>.attn.c_attn.{weight,bias}".
struct LayerParameters {
  WeightAndBias ln_1, attn_c_attn, attn_c_proj, ln_2, mlp_c_fc, mlp_c_proj;
};

// The first stage's token and position embeddings ("wte.weight", "wpe.weight").
struct EmbeddingParameters {
  Parameter& wte;
  Parameter& wpe;
};

// The last stage's final LayerNorm and output layer: "lm_head.weight" when untied, otherwise the
// tied embedding ("wte.weight", the stage's own copy when it is not also the first).
struct OutputParameters {
  WeightAndBias ln_f;
  Parameter& head;
};

// The twelve parameters of a layer, in declaration order.
std::vector<Parameter*> parameters_of(const LayerParameters& layer);

// References into a finalized store, valid as long as it lives (its parameters never move).
LayerParameters layer_parameters(ParameterStore& parameters, int64_t layer);
EmbeddingParameters embedding_parameters(ParameterStore& parameters);
OutputParameters output_parameters(ParameterStore& parameters, const core::ModelSpec& model);

}  // namespace loom::exec
