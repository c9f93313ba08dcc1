#pragma once
// The layout of a checkpoint directory, which the executor writes and reads and the planner reads
// (`loom replan`): one place for its names, so that both find the same step directories.
//
//   DIR/step-000010/manifest.json   written last: its presence makes the step complete
//   DIR/step-000010/rank-00000.safetensors …
//
// The manifest's full reading and the shards' are the executor's (executor/checkpoint/manifest.hpp).

#include "core/json_reader.hpp"  // core::Json

#include <cstdint>      // int64_t
#include <filesystem>   // std::filesystem::path
#include <optional>     // a name that is not a step's
#include <string>       // names
#include <string_view>  // the constants
#include <utility>      // std::pair
#include <vector>       // the step directories

namespace loom::core {

inline constexpr std::string_view kCheckpointFormat = "loom-checkpoint";
inline constexpr int64_t kCheckpointVersion = 1;
inline constexpr std::string_view kCheckpointManifestName = "manifest.json";
inline constexpr std::string_view kCheckpointStepPrefix = "step-";

// "step-000010" → 10; nullopt for any other name (temporaries, stray files).
std::optional<int64_t> parse_checkpoint_step_name(const std::string& name);

// DIR's step directories with their steps, newest first. Temporaries are never looked at.
std::vector<std::pair<int64_t, std::filesystem::path>> checkpoint_step_directories(const std::filesystem::path& dir);

// True when a manifest document explicitly claims another format or version: a different
// program's file (or a newer Loom's), which no fallback to an older step should pass over.
bool is_foreign_checkpoint_manifest(const Json& json);

}  // namespace loom::core
