#pragma once
// Shared by the store tests: a fresh store file per test, removed afterwards, and sample rows.

#include "core/sqlite_handle.hpp"
#include "core/store.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <unistd.h>  // getpid

#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace loom::core::store_testing {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = (std::filesystem::temp_directory_path() /
             fmt::format("loom_store_test_{}_{}.db", ::getpid(), test->name()))
                .string();
    remove_files();
  }
  void TearDown() override { remove_files(); }

  void remove_files() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  }

  // A connection that bypasses the Store, with none of its settings.
  SqliteConnection open_raw() {
    sqlite3* connection = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &connection), SQLITE_OK);
    return SqliteConnection(connection);
  }

  std::string path_;
};

inline std::string query_text(sqlite3* connection, const std::string& sql) {
  Statement statement(connection, sql);
  std::string value;
  statement.for_each_row([&](const Statement& row) { value = row.column_text(0); });
  return value;
}

inline std::int64_t query_int(sqlite3* connection, const std::string& sql) {
  return std::stoll(query_text(connection, sql));
}

inline PlanRow sample_plan() {
  PlanRow plan;
  plan.name = "gpt2-124m tp2 pp2";
  plan.model_name = "gpt2-124m";
  plan.world_size = 8;
  plan.tp = 2;
  plan.pp = 2;
  plan.dp = 2;
  plan.micro_batch_size = 4;
  plan.global_batch_size = 64;
  plan.schedule = "1f1b";
  plan.recompute = "selective";
  plan.sequence_parallel = true;
  plan.distributed_optimizer = false;
  plan.plan_json = R"({"format":"loom-plan","version":1})";
  return plan;
}

inline RunRow sample_run(std::int64_t plan_id) {
  RunRow run;
  run.plan_id = plan_id;
  run.backend = "cpu";
  run.host = "testhost";
  return run;
}

// Values chosen so that any rounding through text or float would show.
inline StepRow sample_step(std::int64_t step) {
  const double x = static_cast<double>(step);
  return StepRow{step,
                 10.0 / (1.0 + x) + 1e-13 * x,
                 0.1 + x / 3.0,
                 1e6 / 7.0 + x,
                 3e-4 * std::exp(-x / 997.0),
                 step % 2 == 0 ? std::optional<double>(std::sqrt(x + 2.0)) : std::nullopt};
}

// "2024-05-01T12:34:56.789Z"
inline bool is_iso8601_utc_with_milliseconds(const std::string& text) {
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (text.size() != shape.size()) return false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const bool ok = shape[i] == 'd' ? std::isdigit(static_cast<unsigned char>(text[i])) != 0
                                    : text[i] == shape[i];
    if (!ok) return false;
  }
  return true;
}

inline std::vector<StepRow> step_batch(std::int64_t first, std::int64_t count) {
  std::vector<StepRow> steps;
  for (std::int64_t step = first; step < first + count; ++step) {
    steps.push_back(sample_step(step));
  }
  return steps;
}

}  // namespace loom::core::store_testing
