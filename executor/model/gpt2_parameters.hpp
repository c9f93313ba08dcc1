#pragma once
// GPT-2's parameters as a rank declares them: Hugging Face GPT-2 names, full shapes (Conv1D
// weights stored [in, out]), sharding, kinds and initialisation.

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

}  // namespace loom::exec
