// The measured side of the store: runs, their steps and per-rank statistics.
#include "core/store.hpp"

#include "core/error.hpp"  // loom::InvalidInput

#include <fmt/format.h>  // fmt::format

#include <limits>  // quiet NaN for NULL metrics

namespace loom::core {

namespace {

constexpr std::string_view kSelectRuns =
    "SELECT id, plan_id, prediction_id, profile_name, backend, status, reason, host, "
    "started_at, finished_at, run_json, source FROM runs";

std::optional<std::string> null_if_empty(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return text;
}

double double_or_nan(const Statement& row, int column) {
  return row.column_optional_double(column).value_or(std::numeric_limits<double>::quiet_NaN());
}

RunRow run_from(const Statement& row) {
  return RunRow{row.column_int64(0),          row.column_int64(1),
                row.column_optional_int64(2), row.column_optional_text(3),
                row.column_text(4),           parse_run_status(row.column_text(5), "runs.status"),
                row.column_optional_text(6),  row.column_optional_text(7),
                row.column_text(8),           row.column_optional_text(9),
                row.column_text(10),          row.column_text(11)};
}

}  // namespace

std::string_view to_string(RunStatus status) {
  switch (status) {
    case RunStatus::running:
      return "running";
    case RunStatus::completed:
      return "completed";
    case RunStatus::failed:
      return "failed";
    case RunStatus::cancelled:
      return "cancelled";
  }
  return "unknown";
}

RunStatus parse_run_status(std::string_view text, std::string_view field) {
  for (RunStatus status :
       {RunStatus::running, RunStatus::completed, RunStatus::failed, RunStatus::cancelled}) {
    if (text == to_string(status)) return status;
  }
  throw InvalidInput("{}: '{}' is not a run status; expected running, completed, failed or cancelled", field,
                     text);
}

std::int64_t Store::begin_run(const RunRow& run) {
  require_row("plans", "plan", run.plan_id);
  if (run.prediction_id) require_row("predictions", "prediction", *run.prediction_id);
  Statement& insert = statement(
      "INSERT INTO runs (plan_id, prediction_id, profile_name, backend, status, host, "
      "started_at, run_json, source) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8)");
  insert.bind(1, run.plan_id);
  insert.bind(2, run.prediction_id);
  insert.bind(3, run.profile_name);
  insert.bind(4, run.backend);
  insert.bind(5, run.host);
  insert.bind(6, timestamp_or_now(run.started_at));
  insert.bind(7, run.run_json.empty() ? std::string("{}") : run.run_json);
  insert.bind(8, run.source);
  insert.execute();
  return sqlite3_last_insert_rowid(connection_.get());
}

std::int64_t Store::insert_finished_run(const PlanRow& plan, const std::optional<PredictionRow>& prediction,
                                        RunRow run, const std::vector<StepRow>& steps,
                                        const std::vector<RankStatRow>& stats) {
  if (run.status == RunStatus::running)
    throw InvalidInput("a finished run to store in {} cannot have the status running", path_);
  Transaction transaction(connection_.get());
  run.plan_id = insert_plan(plan);
  if (prediction) {
    PredictionRow predicted = *prediction;
    predicted.plan_id = run.plan_id;
    run.prediction_id = insert_prediction(predicted);
  }
  Statement& insert = statement(
      "INSERT INTO runs (plan_id, prediction_id, profile_name, backend, status, reason, host, "
      "started_at, finished_at, run_json, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  insert.bind(1, run.plan_id);
  insert.bind(2, run.prediction_id);
  insert.bind(3, run.profile_name);
  insert.bind(4, run.backend);
  insert.bind(5, to_string(run.status));
  insert.bind(6, run.reason);
  insert.bind(7, run.host);
  insert.bind(8, timestamp_or_now(run.started_at));
  insert.bind(9, timestamp_or_now(run.finished_at.value_or("")));
  insert.bind(10, run.run_json.empty() ? std::string("{}") : run.run_json);
  insert.bind(11, run.source);
  insert.execute();
  const std::int64_t run_id = sqlite3_last_insert_rowid(connection_.get());
  insert_steps(run_id, steps);
  upsert_rank_stats(run_id, stats);
  transaction.commit();
  return run_id;
}

void Store::append_steps(std::int64_t run_id, const std::vector<StepRow>& steps) {
  Transaction transaction(connection_.get());
  require_row("runs", "run", run_id);
  insert_steps(run_id, steps);
  transaction.commit();
}

void Store::insert_steps(std::int64_t run_id, const std::vector<StepRow>& steps) {
  Statement& insert = statement(
      "INSERT OR REPLACE INTO steps (run_id, step, loss, step_time_s, tokens_per_s, "
      "learning_rate, grad_norm) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  for (const StepRow& step : steps) {
    insert.bind(1, run_id);
    insert.bind(2, step.step);
    insert.bind(3, step.loss);
    insert.bind(4, step.step_time_s);
    insert.bind(5, step.tokens_per_s);
    insert.bind(6, step.learning_rate);
    insert.bind(7, step.grad_norm);
    insert.execute();
  }
}

void Store::put_rank_stats(std::int64_t run_id, const std::vector<RankStatRow>& stats) {
  Transaction transaction(connection_.get());
  require_row("runs", "run", run_id);
  upsert_rank_stats(run_id, stats);
  transaction.commit();
}

void Store::upsert_rank_stats(std::int64_t run_id, const std::vector<RankStatRow>& stats) {
  Statement& upsert = statement(
      "INSERT OR REPLACE INTO rank_stats (run_id, rank, peak_memory_bytes, stats_json) "
      "VALUES (?1, ?2, ?3, ?4)");
  for (const RankStatRow& rank : stats) {
    upsert.bind(1, run_id);
    upsert.bind(2, rank.rank);
    upsert.bind(3, rank.peak_memory_bytes);
    upsert.bind(4, rank.stats_json.empty() ? std::string("{}") : rank.stats_json);
    upsert.execute();
  }
}

void Store::finish_run(std::int64_t run_id, RunStatus status, const std::string& reason) {
  if (status == RunStatus::running) {
    throw InvalidInput("run {} in {}: a run finishes as completed, failed or cancelled, not running", run_id,
                       path_);
  }
  Transaction transaction(connection_.get());
  const RunRow current = run(run_id);
  if (current.status != RunStatus::running) {
    throw InvalidInput("run {} in {} has already finished ({})", run_id, path_,
                       to_string(current.status));
  }
  Statement& update =
      statement("UPDATE runs SET status = ?2, reason = ?3, finished_at = ?4 WHERE id = ?1");
  update.bind(1, run_id);
  update.bind(2, to_string(status));
  update.bind(3, null_if_empty(reason));
  update.bind(4, utc_now_iso8601());
  update.execute();
  transaction.commit();
}

std::vector<RunRow> Store::list_runs() {
  std::vector<RunRow> runs;
  statement(fmt::format("{} ORDER BY id", kSelectRuns)).for_each_row([&](const Statement& row) {
    runs.push_back(run_from(row));
  });
  return runs;
}

RunRow Store::run(std::int64_t id) {
  Statement& select = statement(fmt::format("{} WHERE id = ?1", kSelectRuns));
  select.bind(1, id);
  std::optional<RunRow> found;
  select.for_each_row([&](const Statement& row) { found = run_from(row); });
  if (!found) throw InvalidInput("no run with id {} in {}", id, path_);
  return *found;
}

std::vector<StepRow> Store::steps(std::int64_t run_id) {
  Statement& select = statement(
      "SELECT step, loss, step_time_s, tokens_per_s, learning_rate, grad_norm FROM steps "
      "WHERE run_id = ?1 ORDER BY step");
  select.bind(1, run_id);
  std::vector<StepRow> steps;
  select.for_each_row([&](const Statement& row) {
    steps.push_back(StepRow{row.column_int64(0), double_or_nan(row, 1), double_or_nan(row, 2),
                            double_or_nan(row, 3), double_or_nan(row, 4),
                            row.column_optional_double(5)});
  });
  return steps;
}

std::vector<RankStatRow> Store::rank_stats(std::int64_t run_id) {
  Statement& select = statement(
      "SELECT rank, peak_memory_bytes, stats_json FROM rank_stats WHERE run_id = ?1 "
      "ORDER BY rank");
  select.bind(1, run_id);
  std::vector<RankStatRow> stats;
  select.for_each_row([&](const Statement& row) {
    stats.push_back(
        RankStatRow{row.column_int64(0), row.column_optional_int64(1), row.column_text(2)});
  });
  return stats;
}

}  // namespace loom::core
