#pragma once
// The SQLite store: every plan, prediction, profile and measured run, in one file (default
// loom.db) so that predicted and measured runs can be compared side by side. WAL mode lets
// the GUI read while the executor's rank 0 writes. One Store is one connection: use one per
// thread or process, never share one between threads.

#include "core/sqlite_handle.hpp"  // SqliteConnection, Statement

#include <cstdint>        // std::int64_t
#include <optional>       // nullable columns
#include <string>         // std::string
#include <string_view>    // RunStatus spelling
#include <unordered_map>  // the prepared-statement cache
#include <utility>        // std::pair
#include <vector>         // result lists

namespace loom::core {

// cancelled: stopped by the user (Ctrl-C, SIGTERM, the GUI's Cancel) before it finished.
enum class RunStatus { running, completed, failed, cancelled };
std::string_view to_string(RunStatus status);
// Throws InvalidInput naming `field`, the text and the three accepted spellings.
RunStatus parse_run_status(std::string_view text, std::string_view field = "status");

// Now, as ISO-8601 UTC with milliseconds ("2024-05-01T12:34:56.789Z"); sorts chronologically.
std::string utc_now_iso8601();

// On insert, `id` is ignored and an empty `created_at` / `started_at` means now.
struct PlanRow {
  std::int64_t id = 0;
  std::string created_at;
  std::string name;
  std::string model_name;
  std::int64_t world_size = 0;
  std::optional<std::int64_t> tp;
  std::optional<std::int64_t> pp;
  std::optional<std::int64_t> dp;
  std::optional<std::int64_t> vpp;
  std::optional<std::int64_t> micro_batch_size;
  std::optional<std::int64_t> global_batch_size;
  std::optional<std::string> schedule;
  std::optional<std::string> recompute;  // "none", "selective" or "full"
  std::optional<bool> sequence_parallel;
  std::optional<bool> distributed_optimizer;
  std::string plan_json;
};

struct PredictionRow {
  std::int64_t id = 0;
  std::int64_t plan_id = 0;
  std::string created_at;
  std::string profile_name;
  std::optional<double> step_time_s;
  std::optional<double> tokens_per_s;
  std::optional<double> mfu;  // model FLOPs utilisation, a fraction in [0, 1]
  std::optional<std::int64_t> peak_memory_bytes;
  std::optional<bool> fits;
  std::string prediction_json;
};

struct ProfileRow {
  std::int64_t id = 0;
  std::string name;
  std::optional<std::string> provenance;  // "measured", "datasheet" or "calibrated"
  std::optional<std::string> host;
  std::string created_at;
  std::string profile_json;
};

// begin_run ignores `status` and `finished_at`: a run starts as running.
struct RunRow {
  std::int64_t id = 0;
  std::int64_t plan_id = 0;
  std::optional<std::int64_t> prediction_id;
  std::optional<std::string> profile_name;
  std::string backend;
  RunStatus status = RunStatus::running;
  std::optional<std::string> reason;
  std::optional<std::string> host;
  std::string started_at;
  std::optional<std::string> finished_at;
  std::string run_json = "{}";
  // Who measured it: "loom" (Loom's executor), or "megatron" / "llmc" for a run imported from
  // that framework's training log (`loom import`).
  std::string source = "loom";
};

// One attempt of a run. A run that fails on some devices may go on, re-planned for the devices
// left and resumed from its newest checkpoint, as a new attempt of the same run (`loom run
// --elastic`); each attempt keeps its own plan and prediction so that it is compared with its
// own. begin_run opens attempt 1 and finish_run closes the attempt still running, so a run that
// never re-plans has exactly one attempt. Steps stay keyed by run: an attempt owns the steps
// from its start_step to its end_step, up to where the next attempt starts.
struct RunAttemptRow {
  std::int64_t run_id = 0;
  std::int64_t attempt = 0;  // 1, 2, …; begin_attempt ignores it and takes the next
  std::int64_t plan_id = 0;
  std::optional<std::int64_t> prediction_id;
  std::int64_t devices = 0;  // begin_attempt: 0 means the plan's world size
  RunStatus status = RunStatus::running;  // begin_attempt ignores it and `finished_at`
  std::optional<std::string> cause;       // why it ended, when it did not complete
  std::string started_at;                 // begin_attempt: empty means now
  std::optional<std::string> finished_at;
  // The first and last step it logged (append_steps keeps them); begin_attempt may set start_step
  // ahead of the first step (the step after the checkpoint it resumes from).
  std::optional<std::int64_t> start_step;
  std::optional<std::int64_t> end_step;
};

// A NaN metric (a diverged loss) is stored as NULL and reads back as NaN.
struct StepRow {
  std::int64_t step = 0;
  double loss = 0.0;
  double step_time_s = 0.0;
  double tokens_per_s = 0.0;
  double learning_rate = 0.0;
  std::optional<double> grad_norm;
};

struct RankStatRow {
  std::int64_t rank = 0;
  std::optional<std::int64_t> peak_memory_bytes;
  std::string stats_json = "{}";
};

class Store {
 public:
  enum class OpenMode { create_if_missing, existing };
  // Creates the file if missing (unless `existing`: then a missing file is InvalidInput) and
  // brings its schema up to date. Throws InvalidInput when the file is not a Loom store or was
  // written by a newer Loom, IoError when SQLite fails.
  static Store open(const std::string& path, OpenMode mode = OpenMode::create_if_missing);

  Store(Store&&) noexcept = default;
  Store& operator=(Store&&) noexcept = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }
  int schema_version() const;
  // The underlying connection, for diagnostics and tests (pragmas, hooks). Owned by the Store.
  sqlite3* native_handle() const { return connection_.get(); }

  std::int64_t insert_plan(const PlanRow& plan);
  std::vector<PlanRow> list_plans();
  PlanRow plan(std::int64_t id);

  std::int64_t insert_prediction(const PredictionRow& prediction);
  // Plans with their predictions, all in one transaction (a search's results); the predictions'
  // plan_id is filled in. Returns the new plans' ids in order.
  std::vector<std::int64_t> insert_predicted_plans(std::vector<std::pair<PlanRow, PredictionRow>> rows);
  std::vector<PredictionRow> predictions_for_plan(std::int64_t plan_id);

  std::int64_t insert_profile(const ProfileRow& profile);
  std::vector<ProfileRow> list_profiles();

  // Also opens the run's attempt 1 on the run's plan and prediction, on the plan's devices.
  std::int64_t begin_run(const RunRow& run);
  // A new attempt of a running run whose attempts have all finished (the last one failed): its
  // plan and prediction, devices and first step. Returns its number. Throws InvalidInput when the
  // run has finished, an attempt is still running, or the plan or prediction does not exist.
  std::int64_t begin_attempt(const RunAttemptRow& attempt);
  // Ends the run's running attempt (failed, with its cause; or cancelled or completed) and leaves
  // the run running, for the next attempt to continue. Throws InvalidInput when none is running.
  void finish_attempt(std::int64_t run_id, RunStatus status, const std::string& cause);
  std::vector<RunAttemptRow> attempts(std::int64_t run_id);  // by attempt; empty for no such run
  // One transaction per batch. A step already stored is overwritten, so that a run resumed
  // from a checkpoint can log again the steps after the checkpoint. The steps count for the run's
  // newest attempt (its start_step and end_step widen to take them in).
  void append_steps(std::int64_t run_id, const std::vector<StepRow>& steps);
  // Insert or replace per rank, one transaction per batch.
  void put_rank_stats(std::int64_t run_id, const std::vector<RankStatRow>& stats);
  // Only a running run can finish, and only as completed, failed or cancelled; its attempt still
  // running finishes with it (the same status, the reason as its cause).
  void finish_run(std::int64_t run_id, RunStatus status, const std::string& reason);
  // A run measured elsewhere (an imported training log), stored whole in one transaction: its
  // plan, the prediction made for it (optional), the run as it finished (`run.status` not
  // running; finished_at empty means now), its steps and per-rank statistics. On any failure
  // nothing is stored. Returns the new run's id; the plan's id is in the run row it reads back.
  std::int64_t insert_finished_run(const PlanRow& plan, const std::optional<PredictionRow>& prediction, RunRow run,
                                   const std::vector<StepRow>& steps, const std::vector<RankStatRow>& stats);
  std::vector<RunRow> list_runs();
  RunRow run(std::int64_t id);
  std::vector<StepRow> steps(std::int64_t run_id);           // by step
  std::vector<RankStatRow> rank_stats(std::int64_t run_id);  // by rank

 private:
  Store(std::string path, SqliteConnection connection);
  static std::string timestamp_or_now(const std::string& timestamp);
  // The cached statement for `sql`, prepared on first use.
  Statement& statement(std::string_view sql);
  // The inserts of append_steps and put_rank_stats, inside the caller's transaction.
  void insert_steps(std::int64_t run_id, const std::vector<StepRow>& steps);
  void upsert_rank_stats(std::int64_t run_id, const std::vector<RankStatRow>& stats);
  // The attempt rows of begin_run, insert_finished_run and begin_attempt, inside the caller's
  // transaction.
  void insert_attempt(const RunAttemptRow& attempt);
  void widen_attempt_steps(std::int64_t run_id, const std::vector<StepRow>& steps);
  void close_running_attempt(std::int64_t run_id, RunStatus status, const std::string& cause);
  // Throws InvalidInput "no <noun> with id <id> in <path>" unless the row exists.
  void require_row(std::string_view table, std::string_view noun, std::int64_t id);

  std::string path_;
  SqliteConnection connection_;  // declared before the cache, so it is destroyed after it
  std::unordered_map<std::string, Statement> statements_;
};

}  // namespace loom::core
