#pragma once
// The small closed vocabularies of a plan, with their spelling in plan.json and on the CLI.

#include <string_view>

namespace loom::core {

enum class DType { fp32, bf16, fp16 };
enum class Schedule { gpipe, one_f_one_b, interleaved };
enum class Recompute { none, selective, full };
enum class Activation { gelu, swiglu };
enum class Normalization { layernorm, rmsnorm };
enum class PositionEmbedding { learned_absolute, rope };
// How the attention core runs: `unfused` writes the b·a·s² scores, soft-maxes them and reads
// them back (Megatron-LM of 2021); `flash` is one fused, tiled kernel that keeps only each row's
// log-sum-exp (FlashAttention; Megatron-Core's --attention-backend flash).
enum class AttentionBackend { unfused, flash };

// Bytes of one element of dtype.
int bytes_per_element(DType dtype);

// Canonical spellings ("bf16", "1f1b", "selective", "LayerNorm", "rope", ...).
std::string_view to_string(DType value);
std::string_view to_string(Schedule value);
std::string_view to_string(Recompute value);
std::string_view to_string(Activation value);
std::string_view to_string(Normalization value);
std::string_view to_string(PositionEmbedding value);
std::string_view to_string(AttentionBackend value);

// Parsers throw InvalidInput naming `field`, the value and the accepted spellings.
DType parse_dtype(std::string_view text, std::string_view field = "dtype");
Schedule parse_schedule(std::string_view text, std::string_view field = "schedule");
Recompute parse_recompute(std::string_view text,
                          std::string_view field = "recompute-granularity");
Normalization parse_normalization(std::string_view text,
                                  std::string_view field = "normalization");
PositionEmbedding parse_position_embedding(std::string_view text,
                                           std::string_view field = "position-embedding-type");
AttentionBackend parse_attention_backend(std::string_view text, std::string_view field = "attention-backend");

}  // namespace loom::core
