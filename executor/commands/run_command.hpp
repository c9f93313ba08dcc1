#pragma once
// `loom-exec run`: one rank of a training run launched by mpirun/srun (usually via `loom run`).

#include "executor/kernels/backend.hpp"

#include <optional>
#include <string>

namespace loom::exec {

struct RunOptions {
  std::string plan_path;
  std::optional<int64_t> steps;       // default: the plan's train-iters
  std::string data_path;              // default: the built-in corpus
  int threads = 0;                    // 0: cores / ranks on this node
  bool jsonl = false;                 // one JSON line per step on stdout
  std::string db_path;                // where rank 0 records the run
  std::optional<int64_t> run_id;      // a run row created by `loom run`; else rank 0 creates one
  std::string save_model_path;        // the whole model at the end (safetensors, GPT-2 names)
  std::string init_from_path;         // start from these weights instead of the seed's
  std::string checkpoint_dir;         // per-rank checkpoints every checkpoint_every steps and at the end
  int64_t checkpoint_every = 0;       // 0: only at the end
  int64_t keep_checkpoints = 0;       // the newest N complete checkpoints are kept; 0: all
  bool resume = false;                // continue from the newest complete checkpoint in checkpoint_dir
  // Under `loom run --elastic`: a failure is left for `loom` to record (it ends only the attempt,
  // re-plans for the ranks left and continues the run), so rank 0 does not end the run itself.
  bool elastic = false;
  Backend backend = Backend::cpu;     // cpu (Eigen + MPI) or cuda (CUDA + cuBLASLt + NCCL)
  // Time the wait for the slowest rank before a data- or tensor-parallel collective apart from
  // the transfer (a timed barrier of the group; TimerStack::separates_waits).
  bool separate_waits = true;
};

// Runs the whole training on this rank; returns the exit status.
int run_training(const RunOptions& options);

}  // namespace loom::exec
