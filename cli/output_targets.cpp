#include "cli/output_targets.hpp"

#include "core/model_presets.hpp"  // model_presets
#include "core/profile.hpp"        // builtin_profiles

namespace loom::cli {

std::filesystem::path model_file_input(const std::string& model) {
  for (const core::ModelPreset& preset : core::model_presets())
    if (preset.name == model) return {};
  return model;
}

std::filesystem::path profile_file_input(const std::string& profile) {
  for (const core::Profile& builtin : core::builtin_profiles())
    if (builtin.name == profile) return {};
  return profile;
}

}  // namespace loom::cli
