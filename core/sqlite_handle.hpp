#pragma once
// RAII over the SQLite C API: owned connections and statements, typed binding and reading,
// and an IMMEDIATE transaction that rolls back unless committed. Every failure is an IoError
// naming the database file and SQLite's own message.

#include <sqlite3.h>  // sqlite3, sqlite3_stmt and the C API

#include <concepts>     // std::integral
#include <cstdint>      // std::int64_t
#include <memory>       // std::unique_ptr
#include <optional>     // nullable columns
#include <string>       // std::string
#include <string_view>  // SQL text and bound text

namespace loom::core {

struct SqliteConnectionCloser {
  void operator()(sqlite3* connection) const noexcept;
};
struct SqliteStatementFinalizer {
  void operator()(sqlite3_stmt* statement) const noexcept;
};
using SqliteConnection = std::unique_ptr<sqlite3, SqliteConnectionCloser>;
using SqliteStatementHandle = std::unique_ptr<sqlite3_stmt, SqliteStatementFinalizer>;

// The file behind a connection's main database, for error messages.
std::string database_file(sqlite3* connection);

// Throws IoError "<file>: <what>: <sqlite3_errmsg>".
[[noreturn]] void throw_sqlite_error(sqlite3* connection, std::string_view what);

// Runs SQL that returns no rows (pragmas, DDL, BEGIN/COMMIT); may hold several statements.
void execute_sql(sqlite3* connection, const std::string& sql);

// One prepared statement. Bind indexes are 1-based (as in SQLite), column indexes 0-based.
class Statement {
 public:
  Statement(sqlite3* connection, std::string_view sql);

  void bind(int index, std::int64_t value);
  template <std::integral Integer>
  void bind(int index, Integer value) {
    bind(index, static_cast<std::int64_t>(value));
  }
  // SQLite stores a NaN as NULL.
  void bind(int index, double value);
  void bind(int index, std::string_view value);
  void bind_null(int index);
  template <typename T>
  void bind(int index, const std::optional<T>& value) {
    if (value) {
      bind(index, *value);
    } else {
      bind_null(index);
    }
  }

  // True when a row is ready to read, false when the statement has run to completion.
  bool step();
  // Steps to completion, then resets so the statement can be bound again.
  void execute();
  // Calls on_row(*this) for each result row, then resets. Resets on an exception too, so
  // that no read snapshot stays open and blocks the WAL from being checkpointed.
  template <typename OnRow>
  void for_each_row(OnRow&& on_row);
  // Rewinds and clears bindings; errors were already reported by step().
  void reset() noexcept;

  bool column_is_null(int column) const;
  std::int64_t column_int64(int column) const;
  double column_double(int column) const;
  std::string column_text(int column) const;
  std::optional<std::int64_t> column_optional_int64(int column) const;
  std::optional<bool> column_optional_bool(int column) const;
  std::optional<double> column_optional_double(int column) const;
  std::optional<std::string> column_optional_text(int column) const;

  sqlite3* connection() const { return connection_; }

 private:
  sqlite3* connection_;
  SqliteStatementHandle handle_;
};

// BEGIN IMMEDIATE takes the write lock up front, so a writer waits on the busy timeout
// instead of failing with SQLITE_BUSY when it later upgrades a read transaction.
class Transaction {
 public:
  explicit Transaction(sqlite3* connection);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit();

 private:
  sqlite3* connection_;
  bool committed_ = false;
};

template <typename OnRow>
void Statement::for_each_row(OnRow&& on_row) {
  struct ResetOnExit {
    Statement& statement;
    ~ResetOnExit() { statement.reset(); }
  } reset_on_exit{*this};
  while (step()) on_row(*this);
}

}  // namespace loom::core
