#pragma once
// Re-planning for the devices a checkpoint has left (`loom replan`): the newest complete
// checkpoint in a directory names the plan that wrote it; the same model and training are searched
// on the devices that remain, and the best plan keeps everything but the parallel layout and the
// cluster (and, only where it must, the global batch), so that `loom run NEW --resume
// --checkpoint-dir DIR` continues the run.
//
// The planner may not include the executor (DESIGN.md's arrows), so the manifest is read here on
// its own terms, mirroring executor/checkpoint/manifest.hpp: DIR/step-NNNNNN/manifest.json is
// complete when it parses, claims format "loom-checkpoint" version 1, names its own step, holds a
// valid plan and lists shards that all exist. A damaged step is skipped (and listed); a manifest
// of another format or version is refused, never stepped past.

#include "core/plan.hpp"
#include "planner/search.hpp"

#include <cstdint>     // int64_t
#include <filesystem>  // std::filesystem::path
#include <optional>    // the chosen plan, a devices-per-node override
#include <string>      // notes, skipped steps
#include <vector>      // skipped steps

namespace loom::plan {

struct CheckpointPlan {
  std::filesystem::path step_directory;  // DIR/step-000010
  int64_t step = 0;
  core::Plan plan;  // the plan that wrote it
  // The newer step directories passed over, each "step-000030: why", for the caller to warn about.
  std::vector<std::string> skipped;
};

// The newest complete checkpoint in `dir` and its plan. Throws InvalidInput (one line) when the
// directory is missing or not a directory, when a manifest is of another format or version, or
// when no step is complete (the reasons of the skipped steps are named).
CheckpointPlan latest_checkpoint_plan(const std::filesystem::path& dir);

struct ReplanRequest {
  std::filesystem::path checkpoint_dir;
  int64_t devices = 0;                      // the devices left
  std::optional<int64_t> devices_per_node;  // default: the checkpoint plan's, capped at `devices`
  std::string profile;                      // default: the checkpoint plan's
  bool keep_global_batch = false;           // refuse rather than change the global batch
  Objective objective = Objective::step_time;
  int64_t max_micro_batch_size = 16;
};

struct ReplanResult {
  CheckpointPlan checkpoint;
  SearchRequest request;  // what was finally searched (its global batch is the chosen one)
  SearchResult search;
  int64_t checkpoint_global_batch = 0;
  int64_t global_batch =
      0;  // the one the plans train; differs only where the old one cannot be kept
  // One plain line when the global batch changed ("global batch 64 has no plan on 3 devices; …"),
  // empty when it was kept.
  std::string global_batch_note;
  // The best plan with the checkpoint's model and training (only the global batch may differ),
  // the searched cluster and parallel layout. Empty when no plan fits in memory.
  std::optional<core::Plan> best;
};

// Reads the checkpoint and searches. Throws InvalidInput for `devices` < 1, devices that do not
// make whole nodes, a global batch that cannot be kept under keep_global_batch, or no valid plan
// at any nearby global batch. When valid plans exist but none fits in memory, `best` is empty and
// the search holds the nearest misses (the caller reports them, then refuses).
ReplanResult replan(const ReplanRequest& request, const SearchOptions& options = {});

}  // namespace loom::plan
