#include "core/store_schema.hpp"

#include "core/error.hpp"          // loom::InvalidInput
#include "core/sqlite_handle.hpp"  // Statement, Transaction, execute_sql

#include <fmt/format.h>  // fmt::format

#include <array>     // the migration list
#include <optional>  // foreign keys switched off only for table rebuilds

namespace loom::core {

namespace {

// Typed columns for what is filtered, sorted or compared; the full documents stay as JSON
// text so that the schema need not change with every new field of a plan or prediction.
// Timestamps are ISO-8601 UTC text, which sorts chronologically.
constexpr std::string_view kSchemaVersion1 = R"sql(
CREATE TABLE plans (
  id INTEGER PRIMARY KEY,
  created_at TEXT NOT NULL,
  name TEXT NOT NULL,
  model_name TEXT NOT NULL,
  world_size INTEGER NOT NULL CHECK (world_size >= 1),
  tp INTEGER CHECK (tp >= 1),
  pp INTEGER CHECK (pp >= 1),
  dp INTEGER CHECK (dp >= 1),
  vpp INTEGER CHECK (vpp >= 1),
  micro_batch_size INTEGER CHECK (micro_batch_size >= 1),
  global_batch_size INTEGER CHECK (global_batch_size >= 1),
  schedule TEXT,
  recompute TEXT CHECK (recompute IN ('none', 'selective', 'full')),
  sequence_parallel INTEGER CHECK (sequence_parallel IN (0, 1)),
  distributed_optimizer INTEGER CHECK (distributed_optimizer IN (0, 1)),
  plan_json TEXT NOT NULL CHECK (json_valid(plan_json))
);

CREATE TABLE predictions (
  id INTEGER PRIMARY KEY,
  plan_id INTEGER NOT NULL REFERENCES plans(id) ON DELETE CASCADE,
  created_at TEXT NOT NULL,
  profile_name TEXT NOT NULL,
  step_time_s REAL CHECK (step_time_s >= 0),
  tokens_per_s REAL CHECK (tokens_per_s >= 0),
  mfu REAL CHECK (mfu >= 0),
  peak_memory_bytes INTEGER CHECK (peak_memory_bytes >= 0),
  fits INTEGER CHECK (fits IN (0, 1)),
  prediction_json TEXT NOT NULL CHECK (json_valid(prediction_json))
);
CREATE INDEX predictions_by_plan ON predictions(plan_id);

CREATE TABLE profiles (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  provenance TEXT CHECK (provenance IN ('measured', 'datasheet')),
  host TEXT,
  created_at TEXT NOT NULL,
  profile_json TEXT NOT NULL CHECK (json_valid(profile_json))
);
CREATE INDEX profiles_by_name ON profiles(name);

-- A plan with measured runs cannot be deleted (no cascade): measurements are never lost
-- silently. Losing the prediction a run was compared with only unlinks it.
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  plan_id INTEGER NOT NULL REFERENCES plans(id),
  prediction_id INTEGER REFERENCES predictions(id) ON DELETE SET NULL,
  profile_name TEXT,
  backend TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
  reason TEXT,
  host TEXT,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  run_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(run_json)),
  CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX runs_by_plan ON runs(plan_id);
CREATE INDEX runs_by_prediction ON runs(prediction_id);

CREATE TABLE steps (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL CHECK (step >= 0),
  loss REAL,
  step_time_s REAL CHECK (step_time_s >= 0),
  tokens_per_s REAL CHECK (tokens_per_s >= 0),
  learning_rate REAL,
  grad_norm REAL,
  PRIMARY KEY (run_id, step)
) WITHOUT ROWID;

CREATE TABLE rank_stats (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  rank INTEGER NOT NULL CHECK (rank >= 0),
  peak_memory_bytes INTEGER CHECK (peak_memory_bytes >= 0),
  stats_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(stats_json)),
  PRIMARY KEY (run_id, rank)
) WITHOUT ROWID;
)sql";

// A run stopped by the user gets a status of its own: before, it was stored as 'failed' with the
// reason "cancelled by the user". SQLite cannot change a CHECK constraint in place, so the runs
// table is rebuilt (SQLite's documented twelve-step procedure: new table, copy, drop, rename,
// indexes), with foreign-key enforcement off so that dropping the old table does not cascade
// into steps and rank_stats, which refer to runs by name and so refer to the new table after
// the rename.
constexpr std::string_view kSchemaVersion2 = R"sql(
CREATE TABLE runs_v2 (
  id INTEGER PRIMARY KEY,
  plan_id INTEGER NOT NULL REFERENCES plans(id),
  prediction_id INTEGER REFERENCES predictions(id) ON DELETE SET NULL,
  profile_name TEXT,
  backend TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
  reason TEXT,
  host TEXT,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  run_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(run_json)),
  CHECK ((status = 'running') = (finished_at IS NULL))
);
INSERT INTO runs_v2 (id, plan_id, prediction_id, profile_name, backend, status, reason, host,
                     started_at, finished_at, run_json)
  SELECT id, plan_id, prediction_id, profile_name, backend,
         CASE WHEN status = 'failed' AND reason = 'cancelled by the user' THEN 'cancelled' ELSE status END,
         CASE WHEN status = 'failed' AND reason = 'cancelled by the user' THEN NULL ELSE reason END,
         host, started_at, finished_at, run_json
  FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v2 RENAME TO runs;
CREATE INDEX runs_by_plan ON runs(plan_id);
CREATE INDEX runs_by_prediction ON runs(prediction_id);
)sql";

// Runs imported from other frameworks' training logs (`loom import megatron|llmc`) are stored
// beside Loom's own, marked by where they came from. SQLite adds a column with a constant
// default and a CHECK in place (ALTER TABLE … ADD COLUMN), filling the default into every
// existing row: runs stored before are Loom's own.
constexpr std::string_view kSchemaVersion3 = R"sql(
ALTER TABLE runs ADD COLUMN source TEXT NOT NULL DEFAULT 'loom' CHECK (source IN ('loom', 'megatron', 'llmc'));
)sql";

// Profiles fitted by `loom calibrate` are stored beside measured and datasheet ones. The CHECK on
// provenance cannot change in place, so the table is rebuilt (nothing refers to it).
constexpr std::string_view kSchemaVersion4 = R"sql(
CREATE TABLE profiles_v4 (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  provenance TEXT CHECK (provenance IN ('measured', 'datasheet', 'calibrated')),
  host TEXT,
  created_at TEXT NOT NULL,
  profile_json TEXT NOT NULL CHECK (json_valid(profile_json))
);
INSERT INTO profiles_v4 (id, name, provenance, host, created_at, profile_json)
  SELECT id, name, provenance, host, created_at, profile_json FROM profiles;
DROP TABLE profiles;
ALTER TABLE profiles_v4 RENAME TO profiles;
CREATE INDEX profiles_by_name ON profiles(name);
)sql";

// A run may go on after a failure as a new attempt (`loom run --elastic`: re-planned for the
// devices left, resumed from the newest checkpoint), so each attempt records its own plan, the
// prediction it is compared with, its devices, its time span, the range of steps it logged and
// why it ended. Every run stored before becomes its own attempt 1: its plan, prediction, times,
// status and reason, and the steps it logged. Steps stay keyed by run: attempt k owns the steps
// from its start_step to its end_step (a later attempt that resumed from an earlier checkpoint
// rewrites the steps after it, which then belong to the later attempt).
constexpr std::string_view kSchemaVersion5 = R"sql(
CREATE TABLE run_attempts (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL CHECK (attempt >= 1),
  plan_id INTEGER NOT NULL REFERENCES plans(id),
  prediction_id INTEGER REFERENCES predictions(id) ON DELETE SET NULL,
  devices INTEGER NOT NULL CHECK (devices >= 1),
  status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
  cause TEXT,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  start_step INTEGER CHECK (start_step >= 0),
  end_step INTEGER CHECK (end_step >= start_step),
  PRIMARY KEY (run_id, attempt),
  CHECK ((status = 'running') = (finished_at IS NULL))
) WITHOUT ROWID;
CREATE INDEX run_attempts_by_plan ON run_attempts(plan_id);
CREATE INDEX run_attempts_by_prediction ON run_attempts(prediction_id);
INSERT INTO run_attempts (run_id, attempt, plan_id, prediction_id, devices, status, cause, started_at,
                          finished_at, start_step, end_step)
  SELECT runs.id, 1, runs.plan_id, runs.prediction_id, max(plans.world_size, 1), runs.status, runs.reason,
         runs.started_at, runs.finished_at,
         (SELECT min(step) FROM steps WHERE steps.run_id = runs.id),
         (SELECT max(step) FROM steps WHERE steps.run_id = runs.id)
  FROM runs JOIN plans ON plans.id = runs.plan_id;
)sql";

constexpr std::array kMigrations = {
    StoreMigration{1, "plans, predictions, profiles, runs, steps, rank_stats", kSchemaVersion1, false},
    StoreMigration{2, "runs.status 'cancelled' (was 'failed' + \"cancelled by the user\")", kSchemaVersion2,
                   true},
    StoreMigration{3, "runs.source: 'loom', or 'megatron' / 'llmc' for runs imported from training logs",
                   kSchemaVersion3, false},
    StoreMigration{4, "profiles.provenance 'calibrated' (profiles fitted by loom calibrate)", kSchemaVersion4, true},
    StoreMigration{5, "run_attempts: each attempt of a run (plan, devices, steps, cause); old runs are attempt 1",
                   kSchemaVersion5, false},
};

// Foreign-key enforcement can only be switched outside a transaction; while it is off for a
// table rebuild, no other statement runs on this connection.
class ForeignKeysOff {
 public:
  explicit ForeignKeysOff(sqlite3* connection) : connection_(connection) {
    execute_sql(connection_, "PRAGMA foreign_keys = OFF");
  }
  ~ForeignKeysOff() {
    // Best effort in a destructor: a failure here leaves enforcement off on a connection
    // that is about to report the migration's error anyway.
    sqlite3_exec(connection_, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
  }
  ForeignKeysOff(const ForeignKeysOff&) = delete;
  ForeignKeysOff& operator=(const ForeignKeysOff&) = delete;

 private:
  sqlite3* connection_;
};

std::int64_t single_integer(sqlite3* connection, std::string_view sql) {
  Statement statement(connection, sql);
  std::int64_t value = 0;
  statement.for_each_row([&](const Statement& row) { value = row.column_int64(0); });
  return value;
}

// Refuses SQLite files written by other programs before anything is added to them.
void check_is_loom_store(sqlite3* connection, int version, const std::string& path) {
  if (version == 0) {
    if (single_integer(connection, "SELECT count(*) FROM sqlite_master") != 0) {
      throw InvalidInput("{} is not a Loom store: it holds tables but no Loom schema version",
                         path);
    }
    return;
  }
  const auto application_id = single_integer(connection, "PRAGMA application_id");
  if (application_id != kLoomApplicationId) {
    throw InvalidInput("{} is not a Loom store: its SQLite application_id is {:#x}, not {:#x}",
                       path, application_id, kLoomApplicationId);
  }
}

}  // namespace

void require_loom_store(sqlite3* connection, const std::string& path_for_messages, bool created_now) {
  const int version = read_store_schema_version(connection);
  check_is_loom_store(connection, version, path_for_messages);
  if (version == 0 && !created_now)
    throw InvalidInput("{} is not a Loom store: it is an SQLite database without Loom's schema; name a new file",
                       path_for_messages);
}

std::span<const StoreMigration> store_migrations() {
  return kMigrations;
}

int latest_store_schema_version() {
  return kMigrations.back().to_version;
}

int read_store_schema_version(sqlite3* connection) {
  return static_cast<int>(single_integer(connection, "PRAGMA user_version"));
}

void migrate_store(sqlite3* connection, const std::string& path_for_messages) {
  const int version = read_store_schema_version(connection);
  check_is_loom_store(connection, version, path_for_messages);
  const int latest = latest_store_schema_version();
  if (version > latest) {
    throw InvalidInput(
        "{} has store schema version {}, but this build of Loom knows versions up to {}; "
        "open it with a newer Loom",
        path_for_messages, version, latest);
  }
  for (const StoreMigration& migration : store_migrations()) {
    if (version >= migration.to_version) continue;
    std::optional<ForeignKeysOff> foreign_keys_off;
    if (migration.rebuilds_tables) foreign_keys_off.emplace(connection);
    Transaction transaction(connection);
    // Another process may have migrated between our read and taking the write lock.
    const int locked_version = read_store_schema_version(connection);
    if (locked_version >= migration.to_version) continue;
    if (locked_version == 0) {
      check_is_loom_store(connection, 0, path_for_messages);
      execute_sql(connection, fmt::format("PRAGMA application_id = {}", kLoomApplicationId));
    }
    execute_sql(connection, std::string(migration.sql));
    if (single_integer(connection, "SELECT count(*) FROM pragma_foreign_key_check") != 0) {
      throw InvalidInput("{}: migrating the store to schema version {} broke a reference between tables; "
                         "the store was left as it was",
                         path_for_messages, migration.to_version);
    }
    execute_sql(connection, fmt::format("PRAGMA user_version = {}", migration.to_version));
    transaction.commit();
  }
}

}  // namespace loom::core
