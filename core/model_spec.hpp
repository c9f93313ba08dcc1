#pragma once
// The architecture of a decoder-only transformer, in Megatron-LM's terms.

#include "core/enums.hpp"

#include <cstdint>
#include <string>

namespace loom::core {

struct ModelSpec {
  std::string name;  // preset name or the user's label; informational only
  int64_t num_layers = 0;
  int64_t hidden_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_query_groups = 0;  // key/value heads; equal to the heads for multi-head attention
  int64_t ffn_hidden_size = 0;
  int64_t padded_vocab_size = 0;
  int64_t seq_length = 0;
  bool untie_embeddings_and_output_weights = false;
  // GPT-2 style by default: GELU MLP, LayerNorm, learned positions, biases on linears.
  Activation activation = Activation::gelu;
  Normalization normalization = Normalization::layernorm;
  PositionEmbedding position_embedding = PositionEmbedding::learned_absolute;
  bool add_bias_linear = true;

  int64_t kv_channels() const { return hidden_size / num_attention_heads; }
  bool tied_embeddings() const { return !untie_embeddings_and_output_weights; }

  // Throws InvalidInput naming the field, the value and the rule.
  void validate() const;

  bool operator==(const ModelSpec&) const = default;
};

}  // namespace loom::core
