#include "core/sqlite_handle.hpp"

#include "core/error.hpp"  // loom::IoError

#include <fmt/format.h>  // fmt::format

namespace loom::core {

void SqliteConnectionCloser::operator()(sqlite3* connection) const noexcept {
  // close_v2 defers the close until every statement is finalized, so destruction order of a
  // connection and its cached statements cannot leak or fail.
  sqlite3_close_v2(connection);
}

void SqliteStatementFinalizer::operator()(sqlite3_stmt* statement) const noexcept {
  sqlite3_finalize(statement);
}

std::string database_file(sqlite3* connection) {
  const char* file = sqlite3_db_filename(connection, "main");
  return file != nullptr && *file != '\0' ? std::string(file) : std::string(":memory:");
}

void throw_sqlite_error(sqlite3* connection, std::string_view what) {
  throw IoError("{}: {}: {}", database_file(connection), what, sqlite3_errmsg(connection));
}

void execute_sql(sqlite3* connection, const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(connection, sql.c_str(), nullptr, nullptr, &message) == SQLITE_OK) return;
  const std::string reason = message != nullptr ? message : sqlite3_errmsg(connection);
  sqlite3_free(message);
  throw IoError("{}: cannot execute '{}': {}", database_file(connection), sql, reason);
}

Statement::Statement(sqlite3* connection, std::string_view sql) : connection_(connection) {
  sqlite3_stmt* statement = nullptr;
  const int status = sqlite3_prepare_v3(connection, sql.data(), static_cast<int>(sql.size()),
                                        SQLITE_PREPARE_PERSISTENT, &statement, nullptr);
  handle_.reset(statement);
  if (status != SQLITE_OK) throw_sqlite_error(connection, fmt::format("cannot prepare '{}'", sql));
}

namespace {
void check_bind(sqlite3* connection, int status, int index) {
  if (status != SQLITE_OK) throw_sqlite_error(connection, fmt::format("cannot bind ?{}", index));
}
}  // namespace

void Statement::bind(int index, std::int64_t value) {
  check_bind(connection_, sqlite3_bind_int64(handle_.get(), index, value), index);
}

void Statement::bind(int index, double value) {
  check_bind(connection_, sqlite3_bind_double(handle_.get(), index, value), index);
}

void Statement::bind(int index, std::string_view value) {
  check_bind(connection_,
             sqlite3_bind_text64(handle_.get(), index, value.data(), value.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8),
             index);
}

void Statement::bind_null(int index) {
  check_bind(connection_, sqlite3_bind_null(handle_.get(), index), index);
}

bool Statement::step() {
  const int status = sqlite3_step(handle_.get());
  if (status == SQLITE_ROW) return true;
  if (status == SQLITE_DONE) return false;
  throw_sqlite_error(connection_, fmt::format("cannot run '{}'", sqlite3_sql(handle_.get())));
}

void Statement::execute() {
  struct ResetOnExit {
    Statement& statement;
    ~ResetOnExit() { statement.reset(); }
  } reset_on_exit{*this};
  while (step()) {
  }
}

void Statement::reset() noexcept {
  sqlite3_reset(handle_.get());
  sqlite3_clear_bindings(handle_.get());
}

bool Statement::column_is_null(int column) const {
  return sqlite3_column_type(handle_.get(), column) == SQLITE_NULL;
}

std::int64_t Statement::column_int64(int column) const {
  return sqlite3_column_int64(handle_.get(), column);
}

double Statement::column_double(int column) const {
  return sqlite3_column_double(handle_.get(), column);
}

std::string Statement::column_text(int column) const {
  const auto* text = sqlite3_column_text(handle_.get(), column);
  if (text == nullptr) return {};
  const auto size = static_cast<std::size_t>(sqlite3_column_bytes(handle_.get(), column));
  return std::string(reinterpret_cast<const char*>(text), size);
}

std::optional<std::int64_t> Statement::column_optional_int64(int column) const {
  if (column_is_null(column)) return std::nullopt;
  return column_int64(column);
}

std::optional<bool> Statement::column_optional_bool(int column) const {
  if (column_is_null(column)) return std::nullopt;
  return column_int64(column) != 0;
}

std::optional<double> Statement::column_optional_double(int column) const {
  if (column_is_null(column)) return std::nullopt;
  return column_double(column);
}

std::optional<std::string> Statement::column_optional_text(int column) const {
  if (column_is_null(column)) return std::nullopt;
  return column_text(column);
}

Transaction::Transaction(sqlite3* connection) : connection_(connection) {
  execute_sql(connection_, "BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  // Rolling back is best effort: SQLite may already have rolled back after an error.
  if (!committed_) sqlite3_exec(connection_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  execute_sql(connection_, "COMMIT");
  committed_ = true;
}

}  // namespace loom::core
