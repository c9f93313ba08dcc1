#pragma once
// The architecture of a decoder-only transformer, in Megatron-LM's terms.

#include "core/enums.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace loom::core {

// Megatron's --make-vocab-size-divisible-by default.
inline constexpr int64_t kDefaultMakeVocabSizeDivisibleBy = 128;
// Megatron's --rotary-base default (RoFormer's and Llama 2's θ).
inline constexpr int64_t kDefaultRotaryBase = 10000;

// The two architectures Loom's executor trains and Hugging Face's configs describe: GPT-2's (GELU,
// LayerNorm, learned positions, biases, one key/value head per query head) and Llama's (SwiGLU,
// RMSNorm, rotary positions, no biases, any number of query groups). Any other mix of the
// switches below is `mixed`: the simulator models it, the executor refuses it.
enum class ModelFamily : uint8_t { gpt2, llama, mixed };

struct ModelSpec {
  std::string name;  // preset name or the user's label; informational only
  int64_t num_layers = 0;
  int64_t hidden_size = 0;
  int64_t num_attention_heads = 0;
  // Key/value heads, given for grouped-query attention (Megatron's --group-query-attention
  // --num-query-groups); absent, one group per head, so editing the heads needs nothing else.
  std::optional<int64_t> num_query_groups;
  int64_t ffn_hidden_size = 0;
  // The vocabulary as Megatron takes it: the tokenizer's size, padded for each tensor-parallel
  // size to a multiple of make-vocab-size-divisible-by × tp, so that a plan's tp can be edited
  // alone. A plan may pin the padded size instead (plans written before Loom derived it do);
  // given both, the pin holds and vocab-size says how many of its rows are real tokens. The
  // rows a plan trains: padded_vocab_size(model, tp) (core/vocabulary.hpp).
  std::optional<int64_t> vocab_size;
  int64_t make_vocab_size_divisible_by = kDefaultMakeVocabSizeDivisibleBy;
  std::optional<int64_t> padded_vocab_size;
  int64_t seq_length = 0;
  bool untie_embeddings_and_output_weights = false;
  // GPT-2 style by default: GELU MLP, LayerNorm, learned positions, biases on linears.
  Activation activation = Activation::gelu;
  Normalization normalization = Normalization::layernorm;
  PositionEmbedding position_embedding = PositionEmbedding::learned_absolute;
  bool add_bias_linear = true;
  // Rotary positions' base θ (Megatron's --rotary-base): 10,000 for Llama 2, 500,000 for Llama 3.
  // Only meaningful with position-embedding-type rope.
  int64_t rotary_base = kDefaultRotaryBase;

  int64_t kv_channels() const { return hidden_size / num_attention_heads; }
  int64_t query_groups() const { return num_query_groups.value_or(num_attention_heads); }
  bool tied_embeddings() const { return !untie_embeddings_and_output_weights; }
  ModelFamily family() const;

  // Throws InvalidInput naming the field, the value and the rule.
  void validate() const;

  bool operator==(const ModelSpec&) const = default;
};

}  // namespace loom::core
