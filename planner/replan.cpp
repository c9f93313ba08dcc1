#include "planner/replan.hpp"

#include "core/checkpoint_layout.hpp"  // step directories, format, manifest name
#include "core/error.hpp"        // loom::InvalidInput
#include "core/json_reader.hpp"  // parse_json_text, read_text_file, JsonObjectReader
#include "core/plan_json.hpp"    // plan_from_json
#include "core/profile.hpp"      // resolve_profile

#include <fmt/format.h>  // fmt::format

#include <algorithm>  // std::sort, std::min
#include <cstdlib>    // std::llabs
#include <set>        // nearby global batches
#include <string_view>
#include <utility>  // std::move

namespace loom::plan {

namespace fs = std::filesystem;

namespace {

using core::kCheckpointFormat;
using core::kCheckpointVersion;
constexpr std::string_view kManifestName = core::kCheckpointManifestName;

// Nearby global batches tried before giving up (each one is a whole search).
constexpr size_t kMaxGlobalBatchTries = 12;

// Why this step directory is not a complete checkpoint, or nullopt with `found` filled. Reads only
// what re-planning needs (format, version, step, plan, shards); the rest of the manifest is the
// executor's to check. Throws InvalidInput for a manifest that claims another format or version.
std::optional<std::string> check_step(const fs::path& directory, int64_t step,
                                      CheckpointPlan& found) {
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
  if (core::is_foreign_checkpoint_manifest(json)) {
    const auto format = json.find("format");
    const auto version = json.find("version");
    throw InvalidInput("'{}' is not a Loom checkpoint manifest: format {} version {}; expected '{}' version {}", path,
                       format == json.end() ? "(none)" : core::json_excerpt(*format),
                       version == json.end() ? "(none)" : core::json_excerpt(*version), kCheckpointFormat,
                       kCheckpointVersion);
  }
  try {
    if (!json.is_object())
      throw InvalidInput("the manifest is {}, not an object", core::json_type_name(json));
    core::JsonObjectReader root(json, "");
    const std::string format = root.required_string("format");
    const int64_t version = root.required_int("version");
    (void)format;
    (void)version;
    found.step = root.required_int("step");
    found.plan = core::plan_from_json(root.required_object("plan"));
    const core::Json& shards = json.value("shards", core::Json());
    if (!shards.is_array() || shards.empty())
      throw InvalidInput("shards is {}; expected a list of file names, one per rank",
                         core::json_excerpt(shards));
    if (found.step != step) return fmt::format("its manifest is for step {}", found.step);
    for (const core::Json& shard : shards) {
      if (!shard.is_string() || shard.get<std::string>().empty() ||
          shard.get<std::string>().find('/') != std::string::npos)
        throw InvalidInput("shards entry {} is not a file name", core::json_excerpt(shard));
      if (!fs::is_regular_file(directory / shard.get<std::string>()))
        return fmt::format("shard {} is missing", shard.get<std::string>());
    }
  } catch (const InvalidInput& error) {
    return fmt::format("damaged manifest: '{}': {}", path, error.what());
  }
  found.step_directory = directory;
  return std::nullopt;
}

// Global batches near `batch` that some data-parallel size of `devices` divides (with a
// micro-batch of 1), nearest first; of two equally near, the smaller.
std::vector<int64_t> nearby_global_batches(int64_t batch, int64_t devices) {
  std::set<int64_t> batches;
  for (int64_t dp = 1; dp <= devices; ++dp) {
    if (devices % dp != 0) continue;
    const int64_t below = batch / dp * dp;
    if (below >= 1 && below != batch) batches.insert(below);
    if (below + dp != batch) batches.insert(below + dp);
  }
  std::vector<int64_t> ordered(batches.begin(), batches.end());
  std::sort(ordered.begin(), ordered.end(), [batch](int64_t a, int64_t b) {
    const int64_t da = std::llabs(a - batch), db = std::llabs(b - batch);
    return da != db ? da < db : a < b;
  });
  if (ordered.size() > kMaxGlobalBatchTries) ordered.resize(kMaxGlobalBatchTries);
  return ordered;
}

// True when some combination failed only on how the global batch divides.
bool rejected_for_batch(const SearchResult& result) {
  return result.rejects.by_rule[size_t(core::PlanRule::batch_divisible)] > 0 ||
         result.rejects.by_rule[size_t(core::PlanRule::interleaved_microbatches_divisible_by_pp)] >
             0;
}

}  // namespace

CheckpointPlan latest_checkpoint_plan(const fs::path& dir) {
  if (!fs::exists(dir))
    throw InvalidInput("checkpoint directory '{}' does not exist", dir.string());
  if (!fs::is_directory(dir))
    throw InvalidInput("checkpoint directory '{}' is not a directory", dir.string());
  std::vector<std::string> skipped;
  for (const auto& [step, directory] : core::checkpoint_step_directories(dir)) {
    CheckpointPlan found;
    const std::optional<std::string> why = check_step(directory, step, found);
    if (!why) {
      found.skipped = std::move(skipped);
      return found;
    }
    skipped.push_back(fmt::format("{}: {}", directory.filename().string(), *why));
  }
  if (skipped.empty())
    throw InvalidInput("no checkpoint in '{}': it holds no step-NNNNNN directory", dir.string());
  std::string reasons;
  for (const std::string& reason : skipped) reasons += (reasons.empty() ? "" : "; ") + reason;
  throw InvalidInput("no complete checkpoint in '{}' ({})", dir.string(), reasons);
}

ReplanResult replan(const ReplanRequest& request, const SearchOptions& options) {
  if (request.devices < 1)
    throw InvalidInput("--devices={} must be a positive integer: the devices left to continue on",
                       request.devices);
  ReplanResult result;
  result.checkpoint = latest_checkpoint_plan(request.checkpoint_dir);
  const core::Plan& old = result.checkpoint.plan;

  SearchRequest& search = result.request;
  search.model = old.model;
  search.training = old.training;
  search.devices = request.devices;
  // Fewer devices than a node of the old cluster held make one smaller node; more must make
  // whole nodes, as every Loom cluster is nodes × devices per node.
  const int64_t per_node = request.devices_per_node.value_or(old.cluster.devices_per_node);
  search.devices_per_node = std::min(per_node, request.devices);
  if (request.devices > search.devices_per_node && request.devices % search.devices_per_node != 0)
    throw InvalidInput(
        "--devices={} is not a whole number of nodes of {} devices; pass --devices-per-node with a "
        "divisor of {} (a Loom cluster is nodes x devices per node)",
        request.devices, search.devices_per_node, request.devices);
  // The devices left after a failure are counted, not typed: which groups of a mixed cluster they
  // belong to is not known here, so the user names the one kind to plan for.
  if (old.cluster.mixed() && request.profile.empty())
    throw InvalidInput("the checkpoint's plan runs on a mixed cluster ({} device groups); pass --profile with the "
                       "kind of device the remaining {} devices are, to re-plan for one kind",
                       old.cluster.groups.size(), request.devices);
  search.profile_name = request.profile.empty() ? old.cluster.profile : request.profile;
  search.profile = core::resolve_profile(search.profile_name);
  search.price_per_device_hour = old.cluster.price_per_device_hour;
  search.objective = request.objective;
  search.max_micro_batch_size = request.max_micro_batch_size;
  search.attention_backend = old.parallel.attention_backend;
  if (search.objective == Objective::cost && !search.price_per_device_hour)
    throw InvalidInput(
        "--objective cost needs the checkpoint's plan to name a price per device-hour");

  result.checkpoint_global_batch = old.training.global_batch_size;
  result.global_batch = old.training.global_batch_size;
  result.search = plan::search(search, options);
  if (result.search.stats.valid == 0 && rejected_for_batch(result.search)) {
    if (request.keep_global_batch)
      throw InvalidInput(
          "global batch {} has no valid plan on {} devices (no data-parallel size x micro-batch "
          "divides it); drop --keep-global-batch to accept the nearest one that has",
          result.checkpoint_global_batch, request.devices);
    for (const int64_t batch :
         nearby_global_batches(result.checkpoint_global_batch, request.devices)) {
      SearchRequest tried = search;
      tried.training.global_batch_size = batch;
      SearchResult found = plan::search(tried, options);
      if (found.stats.valid == 0) continue;
      search = tried;
      result.search = std::move(found);
      result.global_batch = batch;
      result.global_batch_note = fmt::format(
          "global batch {} has no valid plan on {} devices; using the nearest that has, {} (pass "
          "--keep-global-batch to refuse instead)",
          result.checkpoint_global_batch, request.devices, batch);
      break;
    }
  }
  if (result.search.stats.valid == 0)
    throw InvalidInput(
        "no valid plan exists for {} with global batch {} on {} devices (nor at a nearby global "
        "batch); the model's sizes do not divide onto them",
        old.model.name.empty() ? "the checkpoint's model" : old.model.name,
        result.checkpoint_global_batch, request.devices);
  if (result.search.top.empty()) return result;

  // The search's plan, with the checkpoint's model and training as they were (the search may have
  // rewritten a pinned vocabulary): only the layout, the cluster and perhaps the batch change.
  core::Plan best = result.search.top.front().plan;
  best.model = old.model;
  best.training = old.training;
  best.training.global_batch_size = result.global_batch;
  best.cluster.price_per_device_hour = old.cluster.price_per_device_hour;
  try {
    best.validate();
  } catch (const InvalidInput&) {
    best.model = result.search.top.front().plan.model;  // the searched model is what was validated
  }
  result.best = std::move(best);
  return result;
}

}  // namespace loom::plan
