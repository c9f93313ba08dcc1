#include "core/model_spec.hpp"

#include "core/error.hpp"
#include "core/limits.hpp"

namespace loom::core {

ModelFamily ModelSpec::family() const {
  const bool gelu = activation == Activation::gelu, layernorm = normalization == Normalization::layernorm,
             learned = position_embedding == PositionEmbedding::learned_absolute;
  if (gelu && layernorm && learned && add_bias_linear && query_groups() == num_attention_heads)
    return ModelFamily::gpt2;
  if (!gelu && !layernorm && !learned && !add_bias_linear) return ModelFamily::llama;
  return ModelFamily::mixed;
}

void ModelSpec::validate() const {
  // The maxima (core/limits.hpp) lie far beyond any published model and keep every count Loom
  // derives (parameters, FLOPs, bytes) representable.
  auto require_in_range = [](std::string_view field, int64_t value, int64_t most) {
    if (value <= 0) throw InvalidInput("{}={} must be a positive integer", field, value);
    if (value > most) throw InvalidInput("{}={} is larger than the supported {}", field, value, most);
  };
  require_in_range("num-layers", num_layers, limits::kMaxLayers);
  require_in_range("hidden-size", hidden_size, limits::kMaxHidden);
  require_in_range("num-attention-heads", num_attention_heads, limits::kMaxHeads);
  if (num_query_groups) require_in_range("num-query-groups", *num_query_groups, limits::kMaxHeads);
  require_in_range("ffn-hidden-size", ffn_hidden_size, limits::kMaxFfnHidden);
  if (!vocab_size && !padded_vocab_size)
    throw InvalidInput("the model needs vocab-size (the tokenizer's vocabulary, padded for each tensor-parallel "
                       "size) or padded-vocab-size");
  if (vocab_size) require_in_range("vocab-size", *vocab_size, limits::kMaxVocab);
  require_in_range("make-vocab-size-divisible-by", make_vocab_size_divisible_by, limits::kMaxVocabDivisor);
  if (padded_vocab_size) require_in_range("padded-vocab-size", *padded_vocab_size, limits::kMaxVocab);
  if (vocab_size && padded_vocab_size && *padded_vocab_size < *vocab_size)
    throw InvalidInput("padded-vocab-size={} is smaller than vocab-size={}; it must hold every token (or leave "
                       "padded-vocab-size out to have it derived for each tensor-model-parallel-size)",
                       *padded_vocab_size, *vocab_size);
  require_in_range("seq-length", seq_length, limits::kMaxSeqLength);
  if (hidden_size % num_attention_heads != 0)
    throw InvalidInput("num-attention-heads={} does not divide hidden-size={}", num_attention_heads,
                       hidden_size);
  if (rotary_base < 2 || rotary_base > limits::kMaxRotaryBase)
    throw InvalidInput("rotary-base={} is out of range; expected an integer from 2 to {} (10000 for Llama 2, 500000 "
                       "for Llama 3)",
                       rotary_base, limits::kMaxRotaryBase);
  if (num_query_groups && (*num_query_groups > num_attention_heads || num_attention_heads % *num_query_groups != 0))
    throw InvalidInput("num-query-groups={} does not divide num-attention-heads={}; leave num-query-groups out "
                       "for one group per head",
                       *num_query_groups, num_attention_heads);
}

}  // namespace loom::core
