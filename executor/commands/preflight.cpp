#include "executor/commands/preflight.hpp"

#include "core/error.hpp"                  // loom::InvalidInput
#include "core/output_file.hpp"            // check_output_target
#include "core/plan_json.hpp"              // read_plan_file
#include "executor/data/batches.hpp"       // global_batch_tokens
#include "executor/data/token_source.hpp"  // open_tokens, default_corpus_path
#include "executor/engine/model_io.hpp"    // check_full_model_file, resumable_checkpoint
#include "executor/model/gpt_stage.hpp"    // require_trainable_architecture

#include <filesystem>  // the checkpoint directory
#include <vector>      // the run's inputs

namespace loom::exec {

namespace fs = std::filesystem;

void check_run_options(const RunOptions& options) {
  if (options.steps && *options.steps < 0)
    throw InvalidInput("--steps={} must be 0 (load and save only) or positive", *options.steps);
  if (options.checkpoint_every < 0)
    throw InvalidInput("--checkpoint-every={} must be 0 (only at the end) or positive", options.checkpoint_every);
  if (options.checkpoint_every > 0 && options.checkpoint_dir.empty())
    throw InvalidInput("--checkpoint-every={} needs --checkpoint-dir, where the checkpoints go", options.checkpoint_every);
  if (options.keep_checkpoints < 0)
    throw InvalidInput("--keep-checkpoints={} must be 0 (keep all) or positive", options.keep_checkpoints);
  if (options.keep_checkpoints > 0 && options.checkpoint_dir.empty())
    throw InvalidInput("--keep-checkpoints={} needs --checkpoint-dir, where the checkpoints go", options.keep_checkpoints);
  if (options.backend == Backend::cuda && !cuda_built())
    throw InvalidInput("--backend cuda: this build of Loom has no CUDA backend (configured without nvcc, cuBLASLt or "
                       "NCCL); use --backend cpu");
  if (options.resume && options.checkpoint_dir.empty())
    throw InvalidInput("--resume needs --checkpoint-dir, where the checkpoints are");
  if (options.threads < 0) throw InvalidInput("--threads={} must be positive (or 0: cores / ranks)", options.threads);
  if (!options.checkpoint_dir.empty()) {
    std::error_code error;
    const fs::file_status status = fs::status(options.checkpoint_dir, error);
    if (fs::exists(status) && !fs::is_directory(status))
      throw InvalidInput("--checkpoint-dir '{}' exists and is not a directory", options.checkpoint_dir);
  }
  if (!options.save_model_path.empty()) {
    if (options.save_model_path == core::kStandardOutputName)
      throw InvalidInput("--save-model needs a file: standard output carries the run's progress");
    // The run reads these: the model may be written over none of them, nor into the checkpoints.
    const std::vector<fs::path> inputs = {options.plan_path, options.data_path, options.init_from_path,
                                          options.db_path, options.checkpoint_dir};
    core::check_output_target(options.save_model_path, inputs);
  }
}

void check_run_inputs(const RunOptions& options) {
  check_run_options(options);
  const core::Plan plan = core::read_plan_file(options.plan_path);
  plan.validate();
  require_trainable_architecture(plan.model);
  const std::string data = options.data_path.empty() ? default_corpus_path() : options.data_path;
  const std::unique_ptr<TokenSource> tokens = open_tokens(data, plan.padded_vocab_size());
  global_batch_tokens(*tokens, uint64_t(plan.training.seed), 1, 1, plan.model.seq_length);  // one sequence
  if (!options.init_from_path.empty()) check_full_model_file(options.init_from_path, plan.trained_model());
  if (options.resume) {
    std::error_code error;
    if (fs::is_directory(options.checkpoint_dir, error)) resumable_checkpoint(options.checkpoint_dir, plan, false);
  }
}

}  // namespace loom::exec
