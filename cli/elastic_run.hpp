#pragma once
// `loom run PLAN --elastic`: a run that outlives the loss of a device. Each attempt launches the
// ranks of one plan; when a rank dies (killed by a signal, a nonzero exit, or no progress line from
// rank 0 for the heartbeat timeout), the attempt is ended and marked failed with its cause, the
// run is re-planned for the devices left (planner/replan.hpp, the global batch kept), the newest
// complete checkpoint is resharded for the new plan, and the run goes on as its next attempt in
// the store. The user's Ctrl-C still cancels the whole run. The loop lives here, in `loom`, which
// never links MPI (DESIGN.md §1): it only starts launchers and reads rank 0's standard output.

#include "core/plan.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace loom::core {
class Store;
}

namespace loom::cli {

struct ElasticSettings {
  int64_t min_devices = 1;  // fewer devices left than this ends the run as failed
  // Seconds without a line on rank 0's standard output (from its launch, or its last line) after
  // which an attempt counts as hung and its ranks are ended; 0: never.
  double heartbeat_timeout_s = 60;
};

// What the loop needs of `loom run`, so that every attempt is launched, checked and stored just
// as a plain run is.
struct ElasticRun {
  ElasticSettings settings;
  std::filesystem::path checkpoint_dir;
  std::string profile;           // --profile, for the re-planning; empty: the checkpoint plan's
  bool jsonl = false;            // announce each new attempt as a JSON line too
  core::Store* store = nullptr;  // with run_id: the run the attempts belong to
  std::optional<int64_t> run_id;
  // The launcher's command line for one attempt's plan.
  std::function<std::vector<std::string>(const std::string& plan_path, const core::Plan& plan,
                                         bool resume)>
      command;
  // `loom-exec check` of one attempt before it starts (throws its failure).
  std::function<void(const std::string& plan_path, bool resume)> check;
  // Stores a plan with its prediction: (plan id, prediction id).
  std::function<std::pair<int64_t, int64_t>(const core::Plan& plan, const std::string& plan_path)>
      store_plan;
};

// Runs attempts until one completes. Throws Error (the run marked failed, or cancelled) when the
// user cancels, a rank reports bad input, the devices left are fewer than min_devices, or no plan
// keeps the run's global batch on them.
void run_elastic(const ElasticRun& run, std::string plan_path, core::Plan plan, bool resume);

// The devices an attempt of `plan` leaves when one of its devices fails: one fewer on a single
// node; on several nodes, a whole node fewer (the failed host's slots are excluded).
int64_t surviving_devices(const core::Plan& plan);

// Where attempt `attempt`'s plan is written: next to the checkpoint directory, as
// `<dir>.run-<id>.attempt-<k>.json` (without a run: `<dir>.attempt-<k>.json`), numbered further
// (`….attempt-<k>-2.json`) rather than over a file already there.
std::filesystem::path attempt_plan_path(const std::filesystem::path& checkpoint_dir,
                                        std::optional<int64_t> run_id, int64_t attempt);

}  // namespace loom::cli
