#pragma once
// Llama's parameters as a rank declares them, in Hugging Face Llama's names and shapes
// (nn.Linear weights stored [out, in]), so that model files load into the usual tooling and back.
//
// Tensor parallelism follows Megatron: q, k and v projections and the gate and up projections
// are column-parallel, split along their output rows (Sharding::rows of an [out, in] weight);
// o_proj and down_proj are row-parallel, split along their input columns. q, k and v are
// declared one after another, as are gate and up, so each rank's three (two) shards lie side by
// side in the flat buffer and are ONE GEMM operand: [q_r; k_r; v_r] of width (a + 2g)·d/t, and
// [gate_r; up_r], Megatron's fused layouts. Grouped-query attention needs g % t == 0 (the plan's
// rule), so a rank's query heads find their groups among its own.

#include "core/model_spec.hpp"
#include "executor/model/parameters.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace loom::exec {

// "model.layers.3.self_attn.q_proj.weight".
std::string llama_layer_parameter_name(int64_t layer, std::string_view part);

void declare_llama_parameters(ParameterStore& parameters, const core::ModelSpec& model,
                              const std::vector<int64_t>& layers, bool has_embedding, bool has_output_layer);

}  // namespace loom::exec
