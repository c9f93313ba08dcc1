#include "core/enums.hpp"

#include "core/error.hpp"
#include "core/json_reader.hpp"  // text_excerpt: the value may be a whole file's worth of text

#include <array>
#include <utility>

namespace loom::core {
namespace {

template <typename Enum, std::size_t N>
using Spellings = std::array<std::pair<Enum, std::string_view>, N>;

constexpr Spellings<DType, 3> kDTypes{{{DType::fp32, "fp32"}, {DType::bf16, "bf16"}, {DType::fp16, "fp16"}}};
constexpr Spellings<Schedule, 3> kSchedules{{{Schedule::gpipe, "gpipe"},
                                             {Schedule::one_f_one_b, "1f1b"},
                                             {Schedule::interleaved, "interleaved"}}};
constexpr Spellings<Recompute, 3> kRecomputes{
    {{Recompute::none, "none"}, {Recompute::selective, "selective"}, {Recompute::full, "full"}}};
constexpr Spellings<Activation, 2> kActivations{{{Activation::gelu, "gelu"}, {Activation::swiglu, "swiglu"}}};
constexpr Spellings<Normalization, 2> kNormalizations{
    {{Normalization::layernorm, "LayerNorm"}, {Normalization::rmsnorm, "RMSNorm"}}};
constexpr Spellings<PositionEmbedding, 2> kPositionEmbeddings{
    {{PositionEmbedding::learned_absolute, "learned_absolute"}, {PositionEmbedding::rope, "rope"}}};

constexpr Spellings<AttentionBackend, 2> kAttentionBackends{
    {{AttentionBackend::unfused, "unfused"}, {AttentionBackend::flash, "flash"}}};

template <typename Enum, std::size_t N>
std::string_view spelling_of(const Spellings<Enum, N>& table, Enum value) {
  for (const auto& [candidate, text] : table)
    if (candidate == value) return text;
  return "?";
}

template <typename Enum, std::size_t N>
Enum parse_with(const Spellings<Enum, N>& table, std::string_view text, std::string_view field) {
  std::string accepted;
  for (const auto& [value, spelling] : table) {
    if (spelling == text) return value;
    accepted += accepted.empty() ? "" : ", ";
    accepted += spelling;
  }
  throw InvalidInput("{}=\"{}\" is not valid; expected one of {}", field, text_excerpt(text), accepted);
}

}  // namespace

int bytes_per_element(DType dtype) { return dtype == DType::fp32 ? 4 : 2; }

std::string_view to_string(DType value) { return spelling_of(kDTypes, value); }
std::string_view to_string(Schedule value) { return spelling_of(kSchedules, value); }
std::string_view to_string(Recompute value) { return spelling_of(kRecomputes, value); }
std::string_view to_string(Activation value) { return spelling_of(kActivations, value); }
std::string_view to_string(Normalization value) { return spelling_of(kNormalizations, value); }
std::string_view to_string(PositionEmbedding value) { return spelling_of(kPositionEmbeddings, value); }
std::string_view to_string(AttentionBackend value) { return spelling_of(kAttentionBackends, value); }

DType parse_dtype(std::string_view text, std::string_view field) { return parse_with(kDTypes, text, field); }
Schedule parse_schedule(std::string_view text, std::string_view field) {
  return parse_with(kSchedules, text, field);
}
Recompute parse_recompute(std::string_view text, std::string_view field) {
  return parse_with(kRecomputes, text, field);
}
Normalization parse_normalization(std::string_view text, std::string_view field) {
  return parse_with(kNormalizations, text, field);
}
PositionEmbedding parse_position_embedding(std::string_view text, std::string_view field) {
  return parse_with(kPositionEmbeddings, text, field);
}
AttentionBackend parse_attention_backend(std::string_view text, std::string_view field) {
  return parse_with(kAttentionBackends, text, field);
}

}  // namespace loom::core
