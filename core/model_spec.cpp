#include "core/model_spec.hpp"

#include "core/error.hpp"

namespace loom::core {

void ModelSpec::validate() const {
  // Upper bounds far beyond any published model keep every count Loom derives (parameters,
  // FLOPs, bytes) inside 64-bit integers.
  auto require_in_range = [](std::string_view field, int64_t value, int64_t most) {
    if (value <= 0) throw InvalidInput("{}={} must be a positive integer", field, value);
    if (value > most) throw InvalidInput("{}={} is larger than the supported {}", field, value, most);
  };
  require_in_range("num-layers", num_layers, 1 << 14);
  require_in_range("hidden-size", hidden_size, 1 << 20);
  require_in_range("num-attention-heads", num_attention_heads, 1 << 16);
  require_in_range("num-query-groups", num_query_groups, 1 << 16);
  require_in_range("ffn-hidden-size", ffn_hidden_size, 1 << 24);
  require_in_range("padded-vocab-size", padded_vocab_size, 1 << 24);
  require_in_range("seq-length", seq_length, 1 << 24);
  if (hidden_size % num_attention_heads != 0)
    throw InvalidInput("num-attention-heads={} does not divide hidden-size={}", num_attention_heads,
                       hidden_size);
  if (num_query_groups > num_attention_heads || num_attention_heads % num_query_groups != 0)
    throw InvalidInput("num-query-groups={} does not divide num-attention-heads={}", num_query_groups,
                       num_attention_heads);
}

}  // namespace loom::core
