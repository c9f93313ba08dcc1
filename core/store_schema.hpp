#pragma once
// The store's schema as an ordered list of forward migrations. Migration i takes
// `PRAGMA user_version` from i - 1 to i inside one transaction, so a database is always at
// exactly one known version. A change to the schema is a new migration appended here,
// never an edit of a shipped one.

#include <sqlite3.h>  // sqlite3

#include <cstdint>      // std::int32_t
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // migration SQL

namespace loom::core {

// Written to `PRAGMA application_id` ("LOOM" in ASCII) so that a Loom store can be told
// apart from any other SQLite file.
inline constexpr std::int32_t kLoomApplicationId = 0x4C4F4F4D;

struct StoreMigration {
  int to_version;
  std::string_view description;
  std::string_view sql;
  // Rebuilds a table (copy, drop, rename): runs with foreign-key enforcement off so that the
  // drop does not cascade into the tables that refer to it.
  bool rebuilds_tables = false;
};

// All migrations, in order; the last one's to_version is the newest schema this build knows.
std::span<const StoreMigration> store_migrations();
int latest_store_schema_version();

// The schema version recorded in the database (0 for an empty file).
int read_store_schema_version(sqlite3* connection);

// Refuses (InvalidInput naming `path_for_messages`) a database that is not a Loom store: one
// with a schema version but another application_id, or with tables but no version. An empty
// database (no tables, version 0) is accepted only when `created_now`: the caller made the file
// this moment. Reads only: nothing is written to a file before it is recognised.
void require_loom_store(sqlite3* connection, const std::string& path_for_messages, bool created_now);

// Brings the database to latest_store_schema_version(). Throws InvalidInput naming
// `path_for_messages` when the file is not a Loom store or was written by a newer Loom.
// Safe against another process migrating the same file at the same time.
void migrate_store(sqlite3* connection, const std::string& path_for_messages);

}  // namespace loom::core
