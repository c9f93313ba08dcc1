#pragma once
// What can be checked of a run before any rank starts, in one process and without MPI: `loom run`
// has the executor do it (`loom-exec check`) before it takes the ranks, so that a bad input is
// one line and status 2 from `loom` within a second, not an error from every rank after a
// launch, and --save-model's place is checked before training, not after it. The ranks check the
// same things again as they meet them (a file may change in between).

#include "executor/commands/run_command.hpp"  // RunOptions

namespace loom::exec {

// The options on their own: steps, checkpoint interval, --resume without a directory, a
// checkpoint directory that is not one, --save-model's target. Cheap; every rank runs it too.
void check_run_options(const RunOptions& options);

// check_run_options, then the plan (valid, an architecture the executor trains), the data (it
// opens and holds one sequence), --init-from (every parameter of the model at its shape) and,
// with --resume, the newest checkpoint (the plan's own). InvalidInput for the first problem.
void check_run_inputs(const RunOptions& options);

}  // namespace loom::exec
