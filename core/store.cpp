#include "core/store.hpp"

#include "core/error.hpp"         // loom::InvalidInput, loom::IoError
#include "core/store_schema.hpp"  // migrate_store

#include <fmt/format.h>  // fmt::format

#include <chrono>            // utc_now_iso8601
#include <filesystem>        // a store that must exist
#include <initializer_list>  // accepted spellings
#include <utility>           // std::move

namespace loom::core {

namespace {

constexpr int kBusyTimeoutMs = 5000;

constexpr std::string_view kSelectPlans =
    "SELECT id, created_at, name, model_name, world_size, tp, pp, dp, vpp, micro_batch_size, "
    "global_batch_size, schedule, recompute, sequence_parallel, distributed_optimizer, "
    "plan_json FROM plans";

void require_one_of(std::string_view field, const std::optional<std::string>& value,
                    std::initializer_list<std::string_view> accepted) {
  if (!value) return;
  for (std::string_view spelling : accepted) {
    if (*value == spelling) return;
  }
  std::string expected;
  for (std::string_view spelling : accepted) {
    expected += expected.empty() ? "" : ", ";
    expected += spelling;
  }
  throw InvalidInput("{}: '{}' is not one of {}", field, *value, expected);
}

PlanRow plan_from(const Statement& row) {
  return PlanRow{row.column_int64(0),
                 row.column_text(1),
                 row.column_text(2),
                 row.column_text(3),
                 row.column_int64(4),
                 row.column_optional_int64(5),
                 row.column_optional_int64(6),
                 row.column_optional_int64(7),
                 row.column_optional_int64(8),
                 row.column_optional_int64(9),
                 row.column_optional_int64(10),
                 row.column_optional_text(11),
                 row.column_optional_text(12),
                 row.column_optional_bool(13),
                 row.column_optional_bool(14),
                 row.column_text(15)};
}

// SQLite opens lazily: the first read of the header is what tells a non-database apart.
void require_sqlite_database(sqlite3* connection, const std::string& path) {
  const int probe = sqlite3_exec(connection, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
  if ((probe & 0xff) == SQLITE_NOTADB)
    throw InvalidInput("{} is not a Loom store: it is not an SQLite database", path);
  if (probe != SQLITE_OK) throw_sqlite_error(connection, "cannot read the store");
}

// Every connection gets the same settings; SQLite does not persist them (except WAL). Called
// only once the file is known to be Loom's: switching to WAL writes to the file.
void configure_connection(sqlite3* connection, const std::string& path) {
  Statement journal_mode(connection, "PRAGMA journal_mode = WAL");
  std::string mode;
  journal_mode.for_each_row([&](const Statement& row) { mode = row.column_text(0); });
  if (mode != "wal" && mode != "memory") {
    throw IoError("{}: cannot switch to WAL mode (journal mode is '{}')", path, mode);
  }
  execute_sql(connection, "PRAGMA foreign_keys = ON");
  // In WAL mode NORMAL cannot corrupt the database; it may only lose the last commits on a
  // power failure, and saves an fsync per transaction.
  execute_sql(connection, "PRAGMA synchronous = NORMAL");
}

// A store file Loom may open: absent (then created, unless only an existing one will do), or a
// regular file with something in it. An empty file is someone's, not a store Loom wrote.
// Returns whether the file exists.
bool check_store_file(const std::string& path, Store::OpenMode mode) {
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  if (!std::filesystem::exists(status)) {
    if (mode == Store::OpenMode::existing)
      throw InvalidInput("no store at '{}'; expected the file a `loom run --db` or `loom plan --db` wrote", path);
    return false;
  }
  if (!std::filesystem::is_regular_file(status))
    throw InvalidInput("{} is not a Loom store: it is {}, not a regular file", path,
                       std::filesystem::is_directory(status) ? "a directory" : "a special file");
  if (std::filesystem::file_size(path, error) == 0 && !error)
    throw InvalidInput("{} is not a Loom store: it is an empty file; remove it or name a new file", path);
  return true;
}

}  // namespace

std::string utc_now_iso8601() {
  using namespace std::chrono;
  const auto now = floor<milliseconds>(system_clock::now());
  const auto today = floor<days>(now);
  const year_month_day date{today};
  const hh_mm_ss time{now - today};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(date.year()),
                     static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                     time.hours().count(), time.minutes().count(), time.seconds().count(),
                     time.subseconds().count());
}

std::string Store::timestamp_or_now(const std::string& timestamp) {
  return timestamp.empty() ? utc_now_iso8601() : timestamp;
}

Store::Store(std::string path, SqliteConnection connection)
    : path_(std::move(path)), connection_(std::move(connection)) {}

Store Store::open(const std::string& path, OpenMode mode) {
  // A command that only reads (`loom runs`, `loom compare`, the GUI's Runs view) must not leave
  // an empty store behind where the user mistyped a path; no command writes into a file that it
  // has not recognised as a Loom store.
  const bool existed = check_store_file(path, mode);
  sqlite3* raw_connection = nullptr;
  const int status = sqlite3_open_v2(path.c_str(), &raw_connection,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  SqliteConnection connection(raw_connection);  // owned even when opening failed
  if (status != SQLITE_OK) {
    throw IoError("cannot open store {}: {}", path,
                  raw_connection ? sqlite3_errmsg(raw_connection) : sqlite3_errstr(status));
  }
  sqlite3_extended_result_codes(raw_connection, 1);
  sqlite3_busy_timeout(raw_connection, kBusyTimeoutMs);
  require_sqlite_database(raw_connection, path);
  require_loom_store(raw_connection, path, !existed);
  // A new store gets its schema (and application_id) before WAL mode: a second process that
  // opens it meanwhile finds either an empty file or a recognisable store, never a bare one.
  if (!existed) migrate_store(raw_connection, path);
  configure_connection(raw_connection, path);
  migrate_store(raw_connection, path);
  return Store(path, std::move(connection));
}

int Store::schema_version() const {
  return read_store_schema_version(connection_.get());
}

Statement& Store::statement(std::string_view sql) {
  auto found = statements_.find(std::string(sql));
  if (found == statements_.end()) {
    found = statements_.emplace(std::string(sql), Statement(connection_.get(), sql)).first;
  }
  return found->second;
}

void Store::require_row(std::string_view table, std::string_view noun, std::int64_t id) {
  Statement& exists = statement(fmt::format("SELECT 1 FROM {} WHERE id = ?1", table));
  exists.bind(1, id);
  bool found = false;
  exists.for_each_row([&](const Statement&) { found = true; });
  if (!found) throw InvalidInput("no {} with id {} in {}", noun, id, path_);
}

std::int64_t Store::insert_plan(const PlanRow& plan) {
  require_one_of("recompute", plan.recompute, {"none", "selective", "full"});
  Statement& insert = statement(
      "INSERT INTO plans (created_at, name, model_name, world_size, tp, pp, dp, vpp, "
      "micro_batch_size, global_batch_size, schedule, recompute, sequence_parallel, "
      "distributed_optimizer, plan_json) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)");
  insert.bind(1, timestamp_or_now(plan.created_at));
  insert.bind(2, plan.name);
  insert.bind(3, plan.model_name);
  insert.bind(4, plan.world_size);
  insert.bind(5, plan.tp);
  insert.bind(6, plan.pp);
  insert.bind(7, plan.dp);
  insert.bind(8, plan.vpp);
  insert.bind(9, plan.micro_batch_size);
  insert.bind(10, plan.global_batch_size);
  insert.bind(11, plan.schedule);
  insert.bind(12, plan.recompute);
  insert.bind(13, plan.sequence_parallel);
  insert.bind(14, plan.distributed_optimizer);
  insert.bind(15, plan.plan_json);
  insert.execute();
  return sqlite3_last_insert_rowid(connection_.get());
}

std::vector<PlanRow> Store::list_plans() {
  std::vector<PlanRow> plans;
  statement(fmt::format("{} ORDER BY id", kSelectPlans)).for_each_row([&](const Statement& row) {
    plans.push_back(plan_from(row));
  });
  return plans;
}

PlanRow Store::plan(std::int64_t id) {
  Statement& select = statement(fmt::format("{} WHERE id = ?1", kSelectPlans));
  select.bind(1, id);
  std::optional<PlanRow> found;
  select.for_each_row([&](const Statement& row) { found = plan_from(row); });
  if (!found) throw InvalidInput("no plan with id {} in {}", id, path_);
  return *found;
}

std::int64_t Store::insert_prediction(const PredictionRow& prediction) {
  require_row("plans", "plan", prediction.plan_id);
  Statement& insert = statement(
      "INSERT INTO predictions (plan_id, created_at, profile_name, step_time_s, tokens_per_s, "
      "mfu, peak_memory_bytes, fits, prediction_json) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  insert.bind(1, prediction.plan_id);
  insert.bind(2, timestamp_or_now(prediction.created_at));
  insert.bind(3, prediction.profile_name);
  insert.bind(4, prediction.step_time_s);
  insert.bind(5, prediction.tokens_per_s);
  insert.bind(6, prediction.mfu);
  insert.bind(7, prediction.peak_memory_bytes);
  insert.bind(8, prediction.fits);
  insert.bind(9, prediction.prediction_json);
  insert.execute();
  return sqlite3_last_insert_rowid(connection_.get());
}

std::vector<std::int64_t> Store::insert_predicted_plans(std::vector<std::pair<PlanRow, PredictionRow>> rows) {
  Transaction transaction(connection_.get());
  std::vector<std::int64_t> ids;
  for (auto& [plan, prediction] : rows) {
    ids.push_back(insert_plan(plan));
    prediction.plan_id = ids.back();
    insert_prediction(prediction);
  }
  transaction.commit();
  return ids;
}

std::vector<PredictionRow> Store::predictions_for_plan(std::int64_t plan_id) {
  Statement& select = statement(
      "SELECT id, plan_id, created_at, profile_name, step_time_s, tokens_per_s, mfu, "
      "peak_memory_bytes, fits, prediction_json FROM predictions WHERE plan_id = ?1 "
      "ORDER BY id");
  select.bind(1, plan_id);
  std::vector<PredictionRow> predictions;
  select.for_each_row([&](const Statement& row) {
    predictions.push_back(PredictionRow{
        row.column_int64(0), row.column_int64(1), row.column_text(2), row.column_text(3),
        row.column_optional_double(4), row.column_optional_double(5), row.column_optional_double(6),
        row.column_optional_int64(7), row.column_optional_bool(8), row.column_text(9)});
  });
  return predictions;
}

std::int64_t Store::insert_profile(const ProfileRow& profile) {
  require_one_of("provenance", profile.provenance, {"measured", "datasheet", "calibrated"});
  Statement& insert = statement(
      "INSERT INTO profiles (name, provenance, host, created_at, profile_json) "
      "VALUES (?1, ?2, ?3, ?4, ?5)");
  insert.bind(1, profile.name);
  insert.bind(2, profile.provenance);
  insert.bind(3, profile.host);
  insert.bind(4, timestamp_or_now(profile.created_at));
  insert.bind(5, profile.profile_json);
  insert.execute();
  return sqlite3_last_insert_rowid(connection_.get());
}

std::vector<ProfileRow> Store::list_profiles() {
  std::vector<ProfileRow> profiles;
  statement(
      "SELECT id, name, provenance, host, created_at, profile_json FROM profiles "
      "ORDER BY id")
      .for_each_row([&](const Statement& row) {
        profiles.push_back(ProfileRow{row.column_int64(0), row.column_text(1),
                                      row.column_optional_text(2), row.column_optional_text(3),
                                      row.column_text(4), row.column_text(5)});
      });
  return profiles;
}

}  // namespace loom::core
