#include "executor/checkpoint/manifest.hpp"

#include "core/error.hpp"        // loom::InvalidInput, loom::IoError
#include "core/json_reader.hpp"  // json_excerpt
#include "core/output_file.hpp"  // OutputFile, sync_directory, is_temporary_file_name
#include "core/store.hpp"        // utc_now_iso8601

#include <fmt/format.h>  // fmt::format

#include <algorithm>  // std::sort
#include <utility>    // std::move

namespace loom::exec {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kManifestName = core::kCheckpointManifestName;
constexpr std::string_view kShardFormat = "loom-checkpoint-shard";
constexpr std::string_view kStepPrefix = core::kCheckpointStepPrefix;

CheckpointManifest manifest_from_json(const core::Json& json, const std::string& source) {
  try {
    core::JsonObjectReader root(json, "");
    const std::string format = root.required_string("format");
    const int64_t version = root.required_int("version");
    if (format != kCheckpointFormat || version != kCheckpointVersion)
      throw InvalidInput("format '{}' version {}; expected '{}' version {}", format, version,
                         kCheckpointFormat, kCheckpointVersion);
    CheckpointManifest manifest;
    manifest.step = root.required_int("step");
    manifest.world_size = root.required_int("world_size");
    if (manifest.step < 0 || manifest.world_size < 1)
      throw InvalidInput("step {} and world_size {}; expected step >= 0 and world_size >= 1",
                         manifest.step, manifest.world_size);
    manifest.plan = root.required_object("plan");
    const core::Json& data_json = root.required_object("data");
    core::JsonObjectReader data(data_json, "data");
    data.accept("seed");  // read below: a uint64, beyond what required_int accepts
    const core::Json seed = data_json.value("seed", core::Json());
    if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<int64_t>() >= 0))
      throw InvalidInput("data.seed is {}; expected a non-negative integer",
                         data_json.contains("seed") ? core::json_excerpt(seed) : "missing");
    manifest.data_seed = seed.get<uint64_t>();
    manifest.data_next_step = data.required_int("next_step");
    data.finish();
    manifest.rng = root.required_object("rng");
    root.accept("shards");
    const core::Json& shards = json.value("shards", core::Json());
    if (!shards.is_array() || int64_t(shards.size()) != manifest.world_size)
      throw InvalidInput("shards is {}; expected a list of {} file names, one per rank",
                         core::json_excerpt(shards), manifest.world_size);
    for (const core::Json& shard : shards) {
      if (!shard.is_string() || shard.get<std::string>().empty() ||
          shard.get<std::string>().find('/') != std::string::npos)
        throw InvalidInput("shards entry {} is not a file name", core::json_excerpt(shard));
      manifest.shards.push_back(shard.get<std::string>());
    }
    manifest.created_at = root.required_string("created_at");
    root.finish();
    return manifest;
  } catch (const InvalidInput& error) {
    throw InvalidInput("'{}': {}", source, error.what());
  }
}

core::Json manifest_to_json(const CheckpointManifest& manifest) {
  core::Json json;
  json["format"] = kCheckpointFormat;
  json["version"] = kCheckpointVersion;
  json["step"] = manifest.step;
  json["world_size"] = manifest.world_size;
  json["plan"] = manifest.plan;
  json["data"] = {{"seed", manifest.data_seed}, {"next_step", manifest.data_next_step}};
  json["rng"] = manifest.rng;
  json["shards"] = manifest.shards;
  json["created_at"] = manifest.created_at;
  return json;
}

// Why this step directory is not a complete checkpoint, or nullopt with `found` filled.
std::optional<std::string> check_step(const fs::path& directory, int64_t step, Checkpoint& found) {
  const fs::path manifest_path = directory / kManifestName;
  if (!fs::is_regular_file(manifest_path))
    return "no manifest.json (the checkpoint was never finished)";
  const std::string path = manifest_path.string();
  core::Json json;
  try {
    json = core::parse_json_text(core::read_text_file(path), path);
  } catch (const InvalidInput& error) {
    return fmt::format("damaged manifest: {}", error.what());
  }
  if (core::is_foreign_checkpoint_manifest(json)) manifest_from_json(json, path);  // throws, naming the format
  try {
    found = Checkpoint{directory, manifest_from_json(json, path)};
  } catch (const InvalidInput& error) {
    return fmt::format("damaged manifest: {}", error.what());
  }
  if (found.manifest.step != step)
    return fmt::format("its manifest is for step {}", found.manifest.step);
  for (const std::string& shard : found.manifest.shards)
    if (!fs::is_regular_file(directory / shard)) return fmt::format("shard {} is missing", shard);
  return std::nullopt;
}

}  // namespace

fs::path Checkpoint::shard_path(int64_t rank) const {
  return directory / manifest.shards.at(size_t(rank));
}

fs::path checkpoint_step_directory(const fs::path& dir, int64_t step) {
  return dir / fmt::format("{}{:06}", kStepPrefix, step);
}

std::string rank_shard_name(int64_t rank) {
  return fmt::format("rank-{:05}.safetensors", rank);
}

fs::path write_rank_shard(const fs::path& dir, int64_t step, int64_t rank,
                          const SafeTensorMap& tensors, const SafeTensorMetadata& extra_metadata) {
  if (step < 0 || rank < 0)
    throw InvalidInput("cannot write a checkpoint shard for step {} rank {}", step, rank);
  SafeTensorMetadata metadata = extra_metadata;
  for (const char* reserved : {"format", "version", "step", "rank"})
    if (metadata.contains(reserved))
      throw InvalidInput("checkpoint shard metadata key '{}' is reserved", reserved);
  metadata["format"] = kShardFormat;
  metadata["version"] = std::to_string(kCheckpointVersion);
  metadata["step"] = std::to_string(step);
  metadata["rank"] = std::to_string(rank);

  const fs::path directory = checkpoint_step_directory(dir, step);
  std::error_code error;
  fs::create_directories(directory, error);
  if (error) throw IoError("cannot create '{}': {}", directory.string(), error.message());
  core::sync_directory(dir);  // the step directory's own entry must survive a crash too
  if (fs::remove(directory / kManifestName, error)) core::sync_directory(directory);
  if (error)
    throw IoError("cannot remove the old '{}': {}", (directory / kManifestName).string(),
                  error.message());
  const fs::path path = directory / rank_shard_name(rank);
  core::remove_stale_temporaries(path);
  write_safetensors(path.string(), tensors, metadata);
  return path;
}

void write_manifest(const fs::path& dir, CheckpointManifest manifest) {
  if (manifest.step < 0 || manifest.world_size < 1)
    throw InvalidInput("cannot write a manifest for step {} with world size {}", manifest.step,
                       manifest.world_size);
  if (manifest.shards.empty())
    for (int64_t rank = 0; rank < manifest.world_size; ++rank)
      manifest.shards.push_back(rank_shard_name(rank));
  if (int64_t(manifest.shards.size()) != manifest.world_size)
    throw InvalidInput("manifest lists {} shards for a world size of {}", manifest.shards.size(),
                       manifest.world_size);
  if (manifest.created_at.empty()) manifest.created_at = core::utc_now_iso8601();

  const fs::path directory = checkpoint_step_directory(dir, manifest.step);
  for (const std::string& shard : manifest.shards)
    if (!fs::is_regular_file(directory / shard))
      throw IoError(
          "cannot write the manifest of step {}: shard '{}' is missing; every rank "
          "must finish write_rank_shard before rank 0 writes the manifest, and '{}' "
          "must be shared by all ranks",
          manifest.step, (directory / shard).string(), dir.string());
  core::remove_stale_temporaries(directory / kManifestName);
  core::OutputFile file(directory / kManifestName);
  file.write(manifest_to_json(manifest).dump(2) + "\n");
  file.publish();
}

CheckpointManifest read_manifest(const fs::path& step_directory) {
  const std::string path = (step_directory / kManifestName).string();
  return manifest_from_json(core::parse_json_text(core::read_text_file(path), path), path);
}

SafeTensorsFile read_rank_shard(const Checkpoint& checkpoint, int64_t rank) {
  if (rank < 0 || rank >= checkpoint.manifest.world_size)
    throw InvalidInput("rank {} is outside the checkpoint's world size {}", rank,
                       checkpoint.manifest.world_size);
  SafeTensorsFile file = read_safetensors(checkpoint.shard_path(rank).string());
  const auto meta = [&](const char* key) {
    const auto found = file.metadata.find(key);
    return found == file.metadata.end() ? std::string("(none)") : found->second;
  };
  if (meta("format") != kShardFormat || meta("step") != std::to_string(checkpoint.manifest.step) ||
      meta("rank") != std::to_string(rank))
    throw InvalidInput("'{}' holds format '{}' step {} rank {}; expected '{}' step {} rank {}",
                       file.path, meta("format"), meta("step"), meta("rank"), kShardFormat,
                       checkpoint.manifest.step, rank);
  return file;
}

CheckpointSearch latest_complete_checkpoint(const fs::path& dir) {
  CheckpointSearch search;
  if (!fs::exists(dir)) return search;
  if (!fs::is_directory(dir))
    throw InvalidInput("checkpoint directory '{}' is not a directory", dir.string());
  for (const auto& [step, directory] : core::checkpoint_step_directories(dir)) {
    Checkpoint found;
    const std::optional<std::string> why = check_step(directory, step, found);
    if (!why) {
      search.latest = std::move(found);
      return search;
    }
    search.skipped.push_back(fmt::format("{}: {}", directory.filename().string(), *why));
    if (search.damaged.empty() && why->starts_with("damaged manifest")) search.damaged = search.skipped.back();
  }
  return search;
}

std::vector<int64_t> prune_checkpoints(const fs::path& dir, int64_t keep) {
  if (keep < 1) throw InvalidInput("cannot keep {} checkpoints; expected at least 1", keep);
  std::vector<int64_t> removed;
  int64_t complete = 0;
  for (const auto& [step, directory] : core::checkpoint_step_directories(dir)) {
    Checkpoint found;
    // Until `keep` complete ones are counted, nothing goes: an incomplete step newer than them
    // may still be on its way (another writer), and older complete ones are the fallback.
    if (complete < keep) {
      if (!check_step(directory, step, found)) ++complete;
      continue;
    }
    std::error_code error;
    fs::remove_all(directory, error);
    if (error) throw IoError("cannot remove the old checkpoint '{}': {}", directory.string(), error.message());
    removed.push_back(step);
  }
  if (!removed.empty()) core::sync_directory(dir);
  return removed;
}

}  // namespace loom::exec
