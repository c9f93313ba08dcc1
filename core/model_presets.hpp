#pragma once
// Model architectures compiled into Loom, each with the publication it comes from.

#include "core/model_spec.hpp"

#include <span>
#include <string_view>

namespace loom::core {

struct ModelPreset {
  std::string_view name;    // what users type: "gpt2-124m", "llama3-70b"
  std::string_view family;  // "GPT-2", "GPT-3", "Llama 2", "Llama 3", "Megatron-LM", "Loom"
  std::string_view source;  // where the numbers were published
  ModelSpec spec;
};

std::span<const ModelPreset> model_presets();

// Throws InvalidInput listing the known names when `name` is not one of them.
const ModelPreset& find_model_preset(std::string_view name);

// A preset name, or else a path to a model JSON file.
ModelSpec resolve_model(std::string_view name_or_file);

}  // namespace loom::core
