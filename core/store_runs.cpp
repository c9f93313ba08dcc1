// The measured side of the store: runs, their steps and per-rank statistics.
#include "core/store.hpp"

#include "core/error.hpp"  // loom::InvalidInput

#include <fmt/format.h>  // fmt::format

#include <algorithm>  // std::min, std::max over a batch of steps
#include <limits>     // quiet NaN for NULL metrics

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

constexpr std::string_view kSelectAttempts =
    "SELECT run_id, attempt, plan_id, prediction_id, devices, status, cause, started_at, finished_at, "
    "start_step, end_step FROM run_attempts";

RunAttemptRow attempt_from(const Statement& row) {
  return RunAttemptRow{row.column_int64(0),
                       row.column_int64(1),
                       row.column_int64(2),
                       row.column_optional_int64(3),
                       row.column_int64(4),
                       parse_run_status(row.column_text(5), "run_attempts.status"),
                       row.column_optional_text(6),
                       row.column_text(7),
                       row.column_optional_text(8),
                       row.column_optional_int64(9),
                       row.column_optional_int64(10)};
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
  Transaction transaction(connection_.get());
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
  const std::string started_at = timestamp_or_now(run.started_at);
  insert.bind(6, started_at);
  insert.bind(7, run.run_json.empty() ? std::string("{}") : run.run_json);
  insert.bind(8, run.source);
  insert.execute();
  const std::int64_t run_id = sqlite3_last_insert_rowid(connection_.get());
  RunAttemptRow first;
  first.run_id = run_id;
  first.attempt = 1;
  first.plan_id = run.plan_id;
  first.prediction_id = run.prediction_id;
  first.started_at = started_at;
  insert_attempt(first);
  transaction.commit();
  return run_id;
}

std::int64_t Store::begin_attempt(const RunAttemptRow& attempt) {
  Transaction transaction(connection_.get());
  const RunRow current = run(attempt.run_id);
  if (current.status != RunStatus::running)
    throw InvalidInput("run {} in {} has finished ({}); a new attempt needs a running run", attempt.run_id, path_,
                       to_string(current.status));
  require_row("plans", "plan", attempt.plan_id);
  if (attempt.prediction_id) require_row("predictions", "prediction", *attempt.prediction_id);
  const std::vector<RunAttemptRow> earlier = attempts(attempt.run_id);
  if (!earlier.empty() && earlier.back().status == RunStatus::running)
    throw InvalidInput("run {} in {}: attempt {} is still running; finish it before the next begins", attempt.run_id,
                       path_, earlier.back().attempt);
  RunAttemptRow next = attempt;
  next.attempt = earlier.empty() ? 1 : earlier.back().attempt + 1;
  next.started_at = timestamp_or_now(attempt.started_at);
  insert_attempt(next);
  transaction.commit();
  return next.attempt;
}

void Store::finish_attempt(std::int64_t run_id, RunStatus status, const std::string& cause) {
  if (status == RunStatus::running)
    throw InvalidInput("run {} in {}: an attempt finishes as completed, failed or cancelled, not running", run_id,
                       path_);
  Transaction transaction(connection_.get());
  const std::vector<RunAttemptRow> all = attempts(run_id);
  if (all.empty() || all.back().status != RunStatus::running)
    throw InvalidInput("run {} in {} has no running attempt to finish", run_id, path_);
  close_running_attempt(run_id, status, cause);
  transaction.commit();
}

std::vector<RunAttemptRow> Store::attempts(std::int64_t run_id) {
  Statement& select = statement(fmt::format("{} WHERE run_id = ?1 ORDER BY attempt", kSelectAttempts));
  select.bind(1, run_id);
  std::vector<RunAttemptRow> rows;
  select.for_each_row([&](const Statement& row) { rows.push_back(attempt_from(row)); });
  return rows;
}

void Store::insert_attempt(const RunAttemptRow& attempt) {
  Statement& insert = statement(
      "INSERT INTO run_attempts (run_id, attempt, plan_id, prediction_id, devices, status, cause, started_at, "
      "finished_at, start_step, end_step) SELECT ?1, ?2, ?3, ?4, CASE WHEN ?5 > 0 THEN ?5 ELSE world_size END, "
      "?6, ?7, ?8, ?9, ?10, ?11 FROM plans WHERE id = ?3");
  insert.bind(1, attempt.run_id);
  insert.bind(2, attempt.attempt);
  insert.bind(3, attempt.plan_id);
  insert.bind(4, attempt.prediction_id);
  insert.bind(5, attempt.devices);
  insert.bind(6, to_string(attempt.status));
  insert.bind(7, attempt.cause);
  insert.bind(8, attempt.started_at);
  insert.bind(9, attempt.finished_at);
  insert.bind(10, attempt.start_step);
  insert.bind(11, attempt.end_step);
  insert.execute();
}

void Store::widen_attempt_steps(std::int64_t run_id, const std::vector<StepRow>& steps) {
  if (steps.empty()) return;
  std::int64_t first = steps.front().step, last = steps.front().step;
  for (const StepRow& step : steps) {
    first = std::min(first, step.step);
    last = std::max(last, step.step);
  }
  Statement& update = statement(
      "UPDATE run_attempts SET start_step = min(coalesce(start_step, ?2), ?2), "
      "end_step = max(coalesce(end_step, ?3), ?3) "
      "WHERE run_id = ?1 AND attempt = (SELECT max(attempt) FROM run_attempts WHERE run_id = ?1)");
  update.bind(1, run_id);
  update.bind(2, first);
  update.bind(3, last);
  update.execute();
}

void Store::close_running_attempt(std::int64_t run_id, RunStatus status, const std::string& cause) {
  Statement& update = statement(
      "UPDATE run_attempts SET status = ?2, cause = ?3, finished_at = ?4 WHERE run_id = ?1 AND status = 'running'");
  update.bind(1, run_id);
  update.bind(2, to_string(status));
  update.bind(3, null_if_empty(cause));
  update.bind(4, utc_now_iso8601());
  update.execute();
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
  run.started_at = timestamp_or_now(run.started_at);
  run.finished_at = timestamp_or_now(run.finished_at.value_or(""));
  insert.bind(8, run.started_at);
  insert.bind(9, run.finished_at);
  insert.bind(10, run.run_json.empty() ? std::string("{}") : run.run_json);
  insert.bind(11, run.source);
  insert.execute();
  const std::int64_t run_id = sqlite3_last_insert_rowid(connection_.get());
  RunAttemptRow only;
  only.run_id = run_id;
  only.attempt = 1;
  only.plan_id = run.plan_id;
  only.prediction_id = run.prediction_id;
  only.status = run.status;
  only.cause = run.reason;
  only.started_at = run.started_at;
  only.finished_at = run.finished_at;
  insert_attempt(only);
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
  widen_attempt_steps(run_id, steps);
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
  close_running_attempt(run_id, status, reason);
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
