#include "executor/model/llama_parameters.hpp"

#include <fmt/format.h>

#include <cmath>

namespace loom::exec {

std::string llama_layer_parameter_name(int64_t layer, std::string_view part) {
  return fmt::format("model.layers.{}.{}", layer, part);
}

void declare_llama_parameters(ParameterStore& p, const core::ModelSpec& m, const std::vector<int64_t>& layers,
                              bool has_embedding, bool has_output_layer) {
  const int64_t h = m.hidden_size, f = m.ffn_hidden_size, d = m.kv_channels(), q = m.num_attention_heads * d,
                kv = m.query_groups() * d, V = m.padded_vocab_size.value();  // Plan::trained_model
  // Megatron's initialisation (init-method-std 0.02; the projections into the residual stream
  // scaled by 1/√(2L)), as for GPT-2.
  const float init_std = 0.02f, residual_std = 0.02f / std::sqrt(2.0f * float(m.num_layers));
  auto name = llama_layer_parameter_name;
  if (has_embedding)
    p.declare("model.embed_tokens.weight", {V, h}, Sharding::vocab_rows, ParameterKind::weight, init_std);
  for (const int64_t l : layers) {
    p.declare(name(l, "input_layernorm.weight"), {h}, Sharding::replicated, ParameterKind::norm_gain);
    p.declare(name(l, "self_attn.q_proj.weight"), {q, h}, Sharding::rows, ParameterKind::weight, init_std);
    p.declare(name(l, "self_attn.k_proj.weight"), {kv, h}, Sharding::rows, ParameterKind::weight, init_std);
    p.declare(name(l, "self_attn.v_proj.weight"), {kv, h}, Sharding::rows, ParameterKind::weight, init_std);
    p.declare(name(l, "self_attn.o_proj.weight"), {h, q}, Sharding::columns, ParameterKind::weight, residual_std);
    p.declare(name(l, "post_attention_layernorm.weight"), {h}, Sharding::replicated, ParameterKind::norm_gain);
    p.declare(name(l, "mlp.gate_proj.weight"), {f, h}, Sharding::rows, ParameterKind::weight, init_std);
    p.declare(name(l, "mlp.up_proj.weight"), {f, h}, Sharding::rows, ParameterKind::weight, init_std);
    p.declare(name(l, "mlp.down_proj.weight"), {h, f}, Sharding::columns, ParameterKind::weight, residual_std);
  }
  if (has_output_layer) {
    p.declare("model.norm.weight", {h}, Sharding::replicated, ParameterKind::norm_gain);
    if (m.untie_embeddings_and_output_weights)
      p.declare("lm_head.weight", {V, h}, Sharding::vocab_rows, ParameterKind::weight, init_std);
    else if (!has_embedding)  // the last stage's copy of the tied embedding, as for GPT-2
      p.declare("model.embed_tokens.weight", {V, h}, Sharding::vocab_rows, ParameterKind::tied_embedding_copy,
                init_std);
  }
}

}  // namespace loom::exec
