#pragma once
// Checkpoints on disk: one directory per step, one safetensors shard per rank, and a manifest
// that is written last and makes the step complete.
//
//   DIR/step-000010/rank-00000.safetensors   each rank's own parameters and optimizer state
//   DIR/step-000010/rank-00001.safetensors
//   DIR/step-000010/manifest.json            {"format": "loom-checkpoint", "version": 1, …}
//
// Writing a checkpoint is a protocol the caller runs, since only it holds the communicator:
//   1. every rank calls write_rank_shard(DIR, step, rank, …);
//   2. all ranks meet at a barrier;
//   3. rank 0 calls write_manifest(DIR, manifest).
// Every file is written to a temporary name, fsynced and renamed (core/output_file.hpp), so a
// directory whose manifest exists and whose listed shards exist is complete; a crash at any
// moment leaves at worst an incomplete directory, which latest_complete_checkpoint skips.

#include "core/checkpoint_layout.hpp"           // the directory layout shared with the planner
#include "core/json_reader.hpp"                 // core::Json
#include "executor/checkpoint/safetensors.hpp"  // SafeTensorMap, SafeTensorsFile

#include <cstdint>      // int64_t, uint64_t
#include <filesystem>   // std::filesystem::path
#include <optional>     // no checkpoint yet
#include <string>       // names
#include <string_view>  // the format name
#include <vector>       // shard names, skipped steps

namespace loom::exec {

inline constexpr std::string_view kCheckpointFormat = core::kCheckpointFormat;
inline constexpr int64_t kCheckpointVersion = core::kCheckpointVersion;

struct CheckpointManifest {
  int64_t step = 0;        // the number of optimizer steps taken when the checkpoint was written
  int64_t world_size = 0;  // ranks, one shard each
  core::Json plan = core::Json::object();  // the plan trained; opaque here
  uint64_t data_seed = 0;      // step t's batch is a function of (seed, t) only (batches.hpp),
  int64_t data_next_step = 0;  // so the seed and the next step are the whole data position
  core::Json rng = core::Json::object();  // random-number state; opaque here
  // Shard file names, rank r at index r. write_manifest fills rank_shard_name(r) when empty.
  std::vector<std::string> shards;
  std::string created_at;  // ISO-8601 UTC; write_manifest sets now when empty
};

struct Checkpoint {
  std::filesystem::path directory;  // DIR/step-000010
  CheckpointManifest manifest;

  std::filesystem::path shard_path(int64_t rank) const;
};

std::filesystem::path checkpoint_step_directory(const std::filesystem::path& dir, int64_t step);
std::string rank_shard_name(int64_t rank);  // "rank-00003.safetensors"

// Writes this rank's shard into DIR/step-NNNNNN/ (created if needed) and returns its path.
// The shard's metadata records format "loom-checkpoint-shard", version, step and rank (keys
// that `extra_metadata` may not use). If the step directory already holds a manifest (a run
// resumed from an earlier step is rewriting this one) it is removed first, so the step stays
// incomplete until the new manifest lands rather than pairing the old manifest with new shards.
std::filesystem::path write_rank_shard(const std::filesystem::path& dir, int64_t step, int64_t rank,
                                       const SafeTensorMap& tensors,
                                       const SafeTensorMetadata& extra_metadata = {});

// Rank 0, after the barrier that follows every rank's write_rank_shard. Checks that every
// shard is present (IoError otherwise: a rank did not finish, or DIR is not shared by all
// ranks), then writes manifest.json atomically.
void write_manifest(const std::filesystem::path& dir, CheckpointManifest manifest);

// Reads DIR/step-NNNNNN/manifest.json strictly. Any problem is InvalidInput naming the file.
CheckpointManifest read_manifest(const std::filesystem::path& step_directory);

// Reads one rank's shard and checks that its metadata names this step and rank.
SafeTensorsFile read_rank_shard(const Checkpoint& checkpoint, int64_t rank);

struct CheckpointSearch {
  std::optional<Checkpoint> latest;  // none when DIR is missing or holds no complete step
  // The newer step directories passed over on the way, each "step-000030: why", for the
  // caller to print as warnings.
  std::vector<std::string> skipped;
  // The first of them whose manifest exists but cannot be read (torn or edited: damage from
  // outside Loom, whose writes are atomic), as in `skipped`; empty when none.
  std::string damaged;
};

// The newest complete checkpoint in DIR. Step directories are tried newest first; one is
// skipped (and listed) when its manifest is missing, is not valid JSON, misses or mistypes a
// field, names another step, or lists a shard that does not exist. Temporaries are never
// looked at. Choice: a damaged manifest falls back to the previous step instead of stopping,
// since the atomic writes mean damage can only come from outside Loom and any complete step
// resumes exactly (the manifest holds the data position and RNG state); the skipped list keeps
// the fallback visible. A manifest of another format or version, however, is InvalidInput:
// that directory was written by a different program or Loom, and falling back past it would
// silently resume from older state.
CheckpointSearch latest_complete_checkpoint(const std::filesystem::path& dir);

// Rank 0, after a checkpoint: removes the step directories older than the newest `keep` complete
// ones (complete or not: none of them will ever be resumed from while those exist). Only names
// of the form step-NNNNNN are touched. Returns the steps removed, newest first.
std::vector<int64_t> prune_checkpoints(const std::filesystem::path& dir, int64_t keep);

}  // namespace loom::exec
