#pragma once
// Moving a model in and out of a run: the whole model in Hugging Face GPT-2 names (export, and
// --init-from), and per-rank checkpoints with their manifest (--checkpoint-dir, --resume).

#include "executor/checkpoint/manifest.hpp"  // Checkpoint
#include "executor/engine/trainer.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace loom::exec {

// Collective over the world (and waits for the trainer's pending parameter gathers first, as
// save_checkpoint does). Global rank 0 writes `path` (safetensors) with every parameter at
// its full shape, gathered over tensor ranks and pipeline stages (through per-stage files next to
// `path`, removed afterwards: checkpoint directories are shared by the ranks of a run).
void save_full_model(Trainer& trainer, Communicator& world, const std::filesystem::path& path);

// Every rank loads its shard of each of its parameters from a full model file with Hugging Face
// GPT-2 names ([in, out] linear weights). A vocabulary padded beyond the file's rows gets zero
// rows; missing parameters or other shapes are InvalidInput.
void load_full_model(Trainer& trainer, const std::filesystem::path& path);

// Checks, without a run, that a full model file holds every parameter of `model` at its shape
// (what load_full_model would refuse, refused here first): InvalidInput naming the file.
void check_full_model_file(const std::filesystem::path& path, const core::ModelSpec& model);

// Collective: every rank writes its parameters and optimizer state for `step`, then rank 0 the
// manifest (temporary name, then rename; the manifest last).
void save_checkpoint(Trainer& trainer, Communicator& world, const std::filesystem::path& dir, int64_t step);

// The newest complete checkpoint in `dir`, checked to be resumable under `plan`: written by the
// same plan, or by another plan of the same model (any tp, pp, dp, virtual stages, micro-batch
// size, ZeRO, recompute) with the same global batch and seed; otherwise InvalidInput in one line
// naming both values ("checkpoint DIR was written for num-layers=4, this plan has num-layers=6").
// Nothing when there is none. Incomplete ones are skipped, with a warning when `report_skipped`.
std::optional<Checkpoint> resumable_checkpoint(const std::filesystem::path& dir, const core::Plan& plan,
                                               bool report_skipped);

struct ResumedCheckpoint {
  int64_t step = 0;        // the optimizer steps it holds; training goes on at step + 1
  int64_t world_size = 0;  // of the plan that wrote it
  bool resharded = false;  // written under another plan and redistributed to this one
};

// Collective: restores the newest complete checkpoint in `dir`, or returns nothing when there is
// none. One written by this very plan is read rank for rank; one of another plan of the same
// model is resharded (executor/checkpoint/reshard.hpp): weights, Adam's m and v, with the step
// counter and the data position from the manifest. Refusals as resumable_checkpoint's.
std::optional<ResumedCheckpoint> resume_checkpoint(Trainer& trainer, Communicator& world,
                                                   const std::filesystem::path& dir);

// Offline (no MPI): the newest complete checkpoint in `dir` as one full model file, as
// save_full_model writes it.
void export_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& out);

}  // namespace loom::exec
