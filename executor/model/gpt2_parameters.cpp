#include "executor/model/gpt2_parameters.hpp"

#include <fmt/format.h>

#include <cmath>

namespace loom::exec {

std::string gpt2_layer_parameter_name(int64_t layer, std::string_view part) {
  return fmt::format("h.{}.{}", layer, part);
}

void declare_gpt2_parameters(ParameterStore& p, const core::ModelSpec& m,
                             const std::vector<int64_t>& layers, bool has_embedding,
                             bool has_output_layer) {
  const int64_t h = m.hidden_size, f = m.ffn_hidden_size,
                V = m.padded_vocab_size.value();  // Plan::trained_model
  // GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/√(2L).
  const float init_std = 0.02f, residual_std = 0.02f / std::sqrt(2.0f * float(m.num_layers));
  auto layer_name = gpt2_layer_parameter_name;
  if (has_embedding) {
    p.declare("wte.weight", {V, h}, Sharding::vocab_rows, ParameterKind::weight, init_std);
    p.declare("wpe.weight", {m.seq_length, h}, Sharding::replicated, ParameterKind::weight,
              init_std);
  }
  for (const int64_t l : layers) {
    p.declare(layer_name(l, "ln_1.weight"), {h}, Sharding::replicated, ParameterKind::norm_gain);
    p.declare(layer_name(l, "ln_1.bias"), {h}, Sharding::replicated, ParameterKind::bias);
    p.declare(layer_name(l, "attn.c_attn.weight"), {h, 3 * h}, Sharding::qkv_columns,
              ParameterKind::weight, init_std);
    p.declare(layer_name(l, "attn.c_attn.bias"), {3 * h}, Sharding::qkv_columns,
              ParameterKind::bias);
    p.declare(layer_name(l, "attn.c_proj.weight"), {h, h}, Sharding::rows, ParameterKind::weight,
              residual_std);
    p.declare(layer_name(l, "attn.c_proj.bias"), {h}, Sharding::replicated, ParameterKind::bias);
    p.declare(layer_name(l, "ln_2.weight"), {h}, Sharding::replicated, ParameterKind::norm_gain);
    p.declare(layer_name(l, "ln_2.bias"), {h}, Sharding::replicated, ParameterKind::bias);
    p.declare(layer_name(l, "mlp.c_fc.weight"), {h, f}, Sharding::columns, ParameterKind::weight,
              init_std);
    p.declare(layer_name(l, "mlp.c_fc.bias"), {f}, Sharding::columns, ParameterKind::bias);
    p.declare(layer_name(l, "mlp.c_proj.weight"), {f, h}, Sharding::rows, ParameterKind::weight,
              residual_std);
    p.declare(layer_name(l, "mlp.c_proj.bias"), {h}, Sharding::replicated, ParameterKind::bias);
  }
  if (has_output_layer) {
    p.declare("ln_f.weight", {h}, Sharding::replicated, ParameterKind::norm_gain);
    p.declare("ln_f.bias", {h}, Sharding::replicated, ParameterKind::bias);
    if (m.untie_embeddings_and_output_weights)
      p.declare("lm_head.weight", {V, h}, Sharding::vocab_rows, ParameterKind::weight, init_std);
    else if (!has_embedding)
      // Megatron's copy of the tied embedding on the last stage: initialised identically,
      // gradients summed with the first stage's; counted once in the gradient norm.
      p.declare("wte.weight", {V, h}, Sharding::vocab_rows, ParameterKind::tied_embedding_copy,
                init_std);
  }
}

}  // namespace loom::exec
