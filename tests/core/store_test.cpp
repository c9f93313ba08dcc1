#include "core/store.hpp"

#include "core/error.hpp"
#include "core/sqlite_handle.hpp"
#include "core/store_schema.hpp"
#include "tests/core/store_test_support.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

namespace loom::core {
namespace {

using namespace loom::core::store_testing;

TEST(UtcNowTest, IsIso8601UtcWithMilliseconds) {
  EXPECT_TRUE(is_iso8601_utc_with_milliseconds(utc_now_iso8601())) << utc_now_iso8601();
}

TEST_F(StoreTest, MigrationFromEmptyCreatesAllTablesAtLatestVersion) {
  Store store = Store::open(path_);
  EXPECT_EQ(store.schema_version(), 5);
  EXPECT_EQ(latest_store_schema_version(), 5);
  const auto raw = open_raw();
  EXPECT_EQ(query_int(raw.get(), "PRAGMA user_version"), 5);
  EXPECT_EQ(query_int(raw.get(), "PRAGMA application_id"), kLoomApplicationId);
  for (const char* table : {"plans", "predictions", "profiles", "runs", "run_attempts", "steps", "rank_stats"}) {
    EXPECT_EQ(query_int(raw.get(), fmt::format("SELECT count(*) FROM sqlite_master "
                                               "WHERE type = 'table' AND name = '{}'",
                                               table)),
              1)
        << table;
  }
}

TEST_F(StoreTest, ReopenKeepsDataAndDoesNotRerunMigrations) {
  std::int64_t plan_id = 0;
  { plan_id = Store::open(path_).insert_plan(sample_plan()); }
  // data_version changes for this connection whenever another one commits to the file.
  const auto raw = open_raw();
  const auto data_version_before = query_int(raw.get(), "PRAGMA data_version");
  Store store = Store::open(path_);
  EXPECT_EQ(query_int(raw.get(), "PRAGMA data_version"), data_version_before);
  EXPECT_EQ(store.schema_version(), 5);
  const auto plans = store.list_plans();
  ASSERT_EQ(plans.size(), 1u);
  const PlanRow expected = sample_plan();
  EXPECT_EQ(plans[0].id, plan_id);
  EXPECT_EQ(plans[0].name, expected.name);
  EXPECT_EQ(plans[0].world_size, 8);
  EXPECT_EQ(plans[0].tp, 2);
  EXPECT_EQ(plans[0].vpp, std::nullopt);
  EXPECT_EQ(plans[0].recompute, "selective");
  EXPECT_EQ(plans[0].sequence_parallel, true);
  EXPECT_EQ(plans[0].distributed_optimizer, false);
  EXPECT_EQ(plans[0].plan_json, expected.plan_json);
  EXPECT_EQ(store.plan(plan_id).model_name, "gpt2-124m");
}

TEST_F(StoreTest, ConnectionUsesWalForeignKeysBusyTimeoutAndNormalSync) {
  Store store = Store::open(path_);
  EXPECT_EQ(query_text(store.native_handle(), "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(query_int(store.native_handle(), "PRAGMA foreign_keys"), 1);
  EXPECT_EQ(query_int(store.native_handle(), "PRAGMA busy_timeout"), 5000);
  EXPECT_EQ(query_int(store.native_handle(), "PRAGMA synchronous"), 1);  // NORMAL
  // WAL is a property of the file, so another connection sees it too.
  EXPECT_EQ(query_text(open_raw().get(), "PRAGMA journal_mode"), "wal");
}

TEST_F(StoreTest, RunOfUnknownPlanIsRefused) {
  Store store = Store::open(path_);
  try {
    store.begin_run(sample_run(12345));
    FAIL() << "begin_run accepted an unknown plan";
  } catch (const InvalidInput& error) {
    EXPECT_NE(std::string(error.what()).find("no plan with id 12345"), std::string::npos);
  }
  // The foreign key holds even for SQL that bypasses the Store's checks.
  const int status = sqlite3_exec(store.native_handle(),
                                  "INSERT INTO runs (plan_id, backend, status, started_at) "
                                  "VALUES (999, 'cpu', 'running', '2024-01-01T00:00:00Z')",
                                  nullptr, nullptr, nullptr);
  EXPECT_EQ(status, SQLITE_CONSTRAINT_FOREIGNKEY);
  EXPECT_TRUE(store.list_runs().empty());
}

TEST_F(StoreTest, BogusRunStatusIsRejected) {
  Store store = Store::open(path_);
  const auto plan_id = store.insert_plan(sample_plan());
  const auto sql = fmt::format(
      "INSERT INTO runs (plan_id, backend, status, started_at) "
      "VALUES ({}, 'cpu', 'bogus', '2024-01-01T00:00:00Z')",
      plan_id);
  EXPECT_EQ(sqlite3_exec(store.native_handle(), sql.c_str(), nullptr, nullptr, nullptr),
            SQLITE_CONSTRAINT_CHECK);
  EXPECT_THROW(parse_run_status("runnning"), InvalidInput);
  try {
    parse_run_status("runnning");
  } catch (const InvalidInput& error) {
    EXPECT_NE(std::string(error.what()).find("running, completed, failed or cancelled"), std::string::npos);
  }
  for (RunStatus status : {RunStatus::running, RunStatus::completed, RunStatus::failed, RunStatus::cancelled}) {
    EXPECT_EQ(parse_run_status(to_string(status)), status);
  }
  PlanRow bad_plan = sample_plan();
  bad_plan.recompute = "sometimes";
  EXPECT_THROW(store.insert_plan(bad_plan), InvalidInput);
}

// A store written by Loom before runs could be 'cancelled' (schema version 1): a run the user
// stopped was stored as 'failed' with the reason "cancelled by the user". Opening it migrates
// that run to 'cancelled', leaves every other run, step and statistic as it was, and keeps the
// references between tables enforced.
TEST_F(StoreTest, VersionOneStoreMigratesCancelledRunsAndKeepsEverythingElse) {
  {
    const auto raw = open_raw();
    Transaction transaction(raw.get());
    execute_sql(raw.get(), std::string(store_migrations()[0].sql));
    execute_sql(raw.get(), fmt::format("PRAGMA application_id = {}", kLoomApplicationId));
    execute_sql(raw.get(), "PRAGMA user_version = 1");
    execute_sql(raw.get(),
                "INSERT INTO plans (id, created_at, name, model_name, world_size, plan_json) "
                "VALUES (1, '2026-01-01T00:00:00.000Z', 'p', 'gpt2-124m', 1, '{}');"
                "INSERT INTO runs (id, plan_id, backend, status, reason, started_at, finished_at) VALUES "
                "(1, 1, 'cpu', 'completed', NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:01:00.000Z'),"
                "(2, 1, 'cpu', 'failed', 'cancelled by the user', '2026-01-01T00:02:00.000Z', '2026-01-01T00:03:00.000Z'),"
                "(3, 1, 'cpu', 'failed', 'rank 1 exited with status 1', '2026-01-01T00:04:00.000Z', '2026-01-01T00:05:00.000Z'),"
                "(4, 1, 'cpu', 'running', NULL, '2026-01-01T00:06:00.000Z', NULL);"
                "INSERT INTO steps (run_id, step, loss) VALUES (1, 1, 5.0), (2, 1, 5.5), (2, 2, 5.25), (3, 1, 6.0);"
                "INSERT INTO rank_stats (run_id, rank, peak_memory_bytes) VALUES (1, 0, 123456789);");
    transaction.commit();
  }
  Store store = Store::open(path_);
  EXPECT_EQ(store.schema_version(), 5);
  const std::vector<RunRow> runs = store.list_runs();
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_EQ(runs[0].status, RunStatus::completed);
  EXPECT_EQ(runs[1].status, RunStatus::cancelled);
  EXPECT_FALSE(runs[1].reason.has_value()) << "the status says it now";
  EXPECT_EQ(runs[2].status, RunStatus::failed);
  EXPECT_EQ(runs[2].reason.value_or(""), "rank 1 exited with status 1");
  EXPECT_EQ(runs[3].status, RunStatus::running);
  EXPECT_EQ(runs[1].started_at, "2026-01-01T00:02:00.000Z");
  EXPECT_EQ(runs[1].finished_at.value_or(""), "2026-01-01T00:03:00.000Z");
  // Rebuilding the runs table cascaded into nothing.
  EXPECT_EQ(query_int(store.native_handle(), "SELECT count(*) FROM steps"), 4);
  EXPECT_EQ(store.steps(2).size(), 2u);
  EXPECT_EQ(query_int(store.native_handle(), "SELECT peak_memory_bytes FROM rank_stats WHERE run_id = 1"), 123456789);
  EXPECT_EQ(query_int(store.native_handle(), "PRAGMA foreign_keys"), 1);
  EXPECT_EQ(query_int(store.native_handle(), "SELECT count(*) FROM sqlite_master WHERE name = 'runs_v2'"), 0);
  for (const char* index : {"runs_by_plan", "runs_by_prediction"})
    EXPECT_EQ(query_int(store.native_handle(),
                        fmt::format("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '{}'", index)),
              1)
        << index;
  // Deleting a run still cascades to its steps: steps refers to the rebuilt table.
  execute_sql(store.native_handle(), "DELETE FROM runs WHERE id = 3");
  EXPECT_EQ(query_int(store.native_handle(), "SELECT count(*) FROM steps WHERE run_id = 3"), 0);
  // A run can finish as cancelled now, and only then.
  store.finish_run(4, RunStatus::cancelled, "");
  EXPECT_EQ(store.run(4).status, RunStatus::cancelled);
  EXPECT_THROW(store.finish_run(4, RunStatus::failed, "again"), InvalidInput);
}

// A store written before runs could be imported from other frameworks' logs (schema version 2):
// opening it adds runs.source in place, marks every run stored before as Loom's own, keeps its
// steps and statistics, and refuses a source other than the three known ones.
TEST_F(StoreTest, VersionTwoStoreGainsRunSourceWithOldRunsMarkedLoom) {
  {
    const auto raw = open_raw();
    Transaction transaction(raw.get());
    execute_sql(raw.get(), std::string(store_migrations()[0].sql));
    execute_sql(raw.get(), std::string(store_migrations()[1].sql));
    execute_sql(raw.get(), fmt::format("PRAGMA application_id = {}", kLoomApplicationId));
    execute_sql(raw.get(), "PRAGMA user_version = 2");
    execute_sql(raw.get(),
                "INSERT INTO plans (id, created_at, name, model_name, world_size, plan_json) "
                "VALUES (1, '2026-01-01T00:00:00.000Z', 'p', 'gpt2-124m', 1, '{}');"
                "INSERT INTO runs (id, plan_id, backend, status, reason, started_at, finished_at) VALUES "
                "(1, 1, 'cpu', 'completed', NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:01:00.000Z'),"
                "(2, 1, 'cpu', 'cancelled', NULL, '2026-01-01T00:02:00.000Z', '2026-01-01T00:03:00.000Z');"
                "INSERT INTO steps (run_id, step, loss) VALUES (1, 1, 5.0), (1, 2, 4.5), (2, 1, 5.5);"
                "INSERT INTO rank_stats (run_id, rank, peak_memory_bytes) VALUES (1, 0, 123456789);");
    transaction.commit();
  }
  Store store = Store::open(path_);
  EXPECT_EQ(store.schema_version(), 5);
  const std::vector<RunRow> runs = store.list_runs();
  ASSERT_EQ(runs.size(), 2u);
  for (const RunRow& run : runs) EXPECT_EQ(run.source, "loom") << run.id;
  EXPECT_EQ(runs[1].status, RunStatus::cancelled);
  EXPECT_EQ(store.steps(1).size(), 2u);
  EXPECT_EQ(store.rank_stats(1).at(0).peak_memory_bytes, 123456789);
  EXPECT_THROW(execute_sql(store.native_handle(), "UPDATE runs SET source = 'pytorch' WHERE id = 1"), IoError);
  EXPECT_EQ(store.run(1).source, "loom");
}

// A store written before calibrated profiles (schema version 3) keeps its stored profiles, ids and
// all, and from then on takes profiles whose provenance is "calibrated"; other values stay refused.
TEST_F(StoreTest, VersionThreeStoreKeepsItsProfilesAndTakesCalibratedOnes) {
  {
    const auto raw = open_raw();
    Transaction transaction(raw.get());
    for (int i = 0; i < 3; ++i) execute_sql(raw.get(), std::string(store_migrations()[size_t(i)].sql));
    execute_sql(raw.get(), fmt::format("PRAGMA application_id = {}", kLoomApplicationId));
    execute_sql(raw.get(), "PRAGMA user_version = 3");
    execute_sql(raw.get(),
                "INSERT INTO profiles (id, name, provenance, host, created_at, profile_json) VALUES "
                "(7, 'this-host', 'measured', 'h1', '2026-01-01T00:00:00.000Z', '{\"name\":\"this-host\"}');");
    EXPECT_THROW(execute_sql(raw.get(), "INSERT INTO profiles (name, provenance, created_at, profile_json) VALUES "
                                        "('c', 'calibrated', '2026-01-01T00:00:00.000Z', '{}')"),
                 IoError);
    transaction.commit();
  }
  Store store = Store::open(path_);
  EXPECT_EQ(store.schema_version(), 5);
  std::vector<ProfileRow> profiles = store.list_profiles();
  ASSERT_EQ(profiles.size(), 1u);
  EXPECT_EQ(profiles[0].id, 7);
  EXPECT_EQ(profiles[0].host, "h1");
  EXPECT_EQ(profiles[0].profile_json, R"({"name":"this-host"})");
  const int64_t calibrated = store.insert_profile(ProfileRow{0, "my-cluster", "calibrated", {}, "", "{}"});
  profiles = store.list_profiles();
  ASSERT_EQ(profiles.size(), 2u);
  EXPECT_EQ(profiles[1].id, calibrated);
  EXPECT_EQ(profiles[1].provenance, "calibrated");
  EXPECT_THROW(store.insert_profile(ProfileRow{0, "x", "guessed", {}, "", "{}"}), InvalidInput);
}

// An imported run goes in whole (plan, run, steps, statistics) in one transaction, or not at all.
TEST_F(StoreTest, FinishedRunIsStoredWholeOrNotAtAll) {
  Store store = Store::open(path_);
  RunRow run;
  run.backend = "cuda";
  run.status = RunStatus::failed;
  run.reason = "the log ends at iteration 20 of 100";
  run.source = "megatron";
  run.run_json = R"({"source_file": "train.log"})";
  const std::vector<StepRow> steps = {{10, 7.5, 1.25, 1000.0, 3e-4, 2.0}, {20, 7.0, 1.0, 1250.0, 3e-4, 1.5}};
  const std::int64_t id = store.insert_finished_run(sample_plan(), std::nullopt, run, steps,
                                                    {{0, 1000, R"({"pipeline_rank": 0})"}});
  const RunRow stored = store.run(id);
  EXPECT_EQ(stored.source, "megatron");
  EXPECT_EQ(stored.status, RunStatus::failed);
  EXPECT_EQ(stored.reason.value_or(""), "the log ends at iteration 20 of 100");
  EXPECT_TRUE(stored.finished_at.has_value());
  EXPECT_EQ(store.steps(id).size(), 2u);
  EXPECT_EQ(store.rank_stats(id).size(), 1u);
  EXPECT_EQ(store.list_plans().size(), 1u);

  run.source = "pytorch";  // refused by the table's CHECK: the plan inserted before is rolled back
  EXPECT_THROW(store.insert_finished_run(sample_plan(), std::nullopt, run, steps, {}), IoError);
  EXPECT_EQ(store.list_plans().size(), 1u);
  EXPECT_EQ(store.list_runs().size(), 1u);
  run.source = "llmc";
  run.status = RunStatus::running;
  EXPECT_THROW(store.insert_finished_run(sample_plan(), std::nullopt, run, steps, {}), InvalidInput);
}

int count_commit(void* commits) {
  ++*static_cast<int*>(commits);
  return 0;  // let the commit proceed
}

TEST_F(StoreTest, ThousandStepsAreOneTransactionAndReadBackExactlyInOrder) {
  Store store = Store::open(path_);
  const auto run_id = store.begin_run(sample_run(store.insert_plan(sample_plan())));
  std::vector<StepRow> steps = step_batch(0, 1000);
  std::reverse(steps.begin(), steps.end());  // the store, not the caller, orders by step
  int commits = 0;
  sqlite3_commit_hook(store.native_handle(), count_commit, &commits);
  store.append_steps(run_id, steps);
  sqlite3_commit_hook(store.native_handle(), nullptr, nullptr);
  EXPECT_EQ(commits, 1);

  const auto stored = store.steps(run_id);
  ASSERT_EQ(stored.size(), 1000u);
  for (std::int64_t step = 0; step < 1000; ++step) {
    const StepRow expected = sample_step(step);
    const StepRow& got = stored[static_cast<std::size_t>(step)];
    ASSERT_EQ(got.step, step);
    EXPECT_EQ(got.loss, expected.loss);
    EXPECT_EQ(got.step_time_s, expected.step_time_s);
    EXPECT_EQ(got.tokens_per_s, expected.tokens_per_s);
    EXPECT_EQ(got.learning_rate, expected.learning_rate);
    EXPECT_EQ(got.grad_norm, expected.grad_norm);
  }
  // A diverged loss survives the trip as NaN.
  StepRow diverged = sample_step(1000);
  diverged.loss = std::nan("");
  store.append_steps(run_id, {diverged});
  EXPECT_TRUE(std::isnan(store.steps(run_id).back().loss));
  EXPECT_THROW(store.append_steps(run_id + 1, step_batch(0, 1)), InvalidInput);
}

TEST_F(StoreTest, FinishRunSetsStatusReasonAndFinishedAt) {
  Store store = Store::open(path_);
  const auto plan_id = store.insert_plan(sample_plan());
  const auto completed_id = store.begin_run(sample_run(plan_id));
  const RunRow started = store.run(completed_id);
  EXPECT_EQ(started.status, RunStatus::running);
  EXPECT_FALSE(started.finished_at.has_value());
  EXPECT_TRUE(is_iso8601_utc_with_milliseconds(started.started_at)) << started.started_at;

  store.finish_run(completed_id, RunStatus::completed, "");
  const RunRow completed = store.run(completed_id);
  EXPECT_EQ(completed.status, RunStatus::completed);
  ASSERT_TRUE(completed.finished_at.has_value());
  EXPECT_GE(*completed.finished_at, completed.started_at);
  EXPECT_FALSE(completed.reason.has_value());
  EXPECT_THROW(store.finish_run(completed_id, RunStatus::failed, "late"), InvalidInput);

  const auto failed_id = store.begin_run(sample_run(plan_id));
  EXPECT_THROW(store.finish_run(failed_id, RunStatus::running, ""), InvalidInput);
  store.finish_run(failed_id, RunStatus::failed, "loss is NaN at step 7");
  EXPECT_EQ(store.run(failed_id).status, RunStatus::failed);
  EXPECT_EQ(store.run(failed_id).reason, "loss is NaN at step 7");
  EXPECT_EQ(store.list_runs().size(), 2u);

  try {
    store.run(42);
    FAIL() << "run(42) found a run that does not exist";
  } catch (const InvalidInput& error) {
    EXPECT_EQ(std::string(error.what()), fmt::format("no run with id 42 in {}", path_));
  }
}

TEST_F(StoreTest, PredictionsProfilesAndRankStatsRoundTrip) {
  Store store = Store::open(path_);
  const auto plan_id = store.insert_plan(sample_plan());
  PredictionRow prediction{0,    plan_id,    "",   "a100-datasheet",        0.5, 1.25e5,
                           0.41, 40LL << 30, true, R"({"step_time_s":0.5})"};
  const auto prediction_id = store.insert_prediction(prediction);
  const auto predictions = store.predictions_for_plan(plan_id);
  ASSERT_EQ(predictions.size(), 1u);
  EXPECT_EQ(predictions[0].id, prediction_id);
  EXPECT_EQ(predictions[0].peak_memory_bytes, 40LL << 30);
  EXPECT_EQ(predictions[0].fits, true);
  EXPECT_FALSE(predictions[0].created_at.empty());
  prediction.plan_id = plan_id + 1;
  EXPECT_THROW(store.insert_prediction(prediction), InvalidInput);

  store.insert_profile(ProfileRow{0, "this-host", "measured", "testhost", "", "{}"});
  ASSERT_EQ(store.list_profiles().size(), 1u);
  EXPECT_EQ(store.list_profiles()[0].provenance, "measured");
  EXPECT_THROW(store.insert_profile(ProfileRow{0, "x", "guessed", {}, "", "{}"}), InvalidInput);

  RunRow run = sample_run(plan_id);
  run.prediction_id = prediction_id;
  const auto run_id = store.begin_run(run);
  EXPECT_EQ(store.run(run_id).prediction_id, prediction_id);
  store.put_rank_stats(run_id, {{0, 100, "{}"}, {1, 200, "{}"}});
  store.put_rank_stats(run_id, {{1, 250, R"({"gemm_s":1.5})"}});
  const auto stats = store.rank_stats(run_id);
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].peak_memory_bytes, 100);
  EXPECT_EQ(stats[1].peak_memory_bytes, 250);
  EXPECT_EQ(stats[1].stats_json, R"({"gemm_s":1.5})");
}

TEST_F(StoreTest, NewerSchemaVersionIsRefused) {
  {
    const auto raw = open_raw();
    execute_sql(raw.get(), fmt::format("PRAGMA application_id = {}", kLoomApplicationId));
    execute_sql(raw.get(), "PRAGMA user_version = 99");
  }
  try {
    Store::open(path_);
    FAIL() << "a store from the future was opened";
  } catch (const InvalidInput& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(path_), std::string::npos) << message;
    EXPECT_NE(message.find("version 99"), std::string::npos) << message;
    EXPECT_NE(message.find(fmt::format("up to {}", latest_store_schema_version())), std::string::npos) << message;
  }
}

TEST_F(StoreTest, NonSqliteFileIsRefused) {
  std::ofstream(path_) << "this is a plan.json, not a database\n" << std::string(2000, 'x');
  try {
    Store::open(path_);
    FAIL() << "a text file was opened as a store";
  } catch (const InvalidInput& error) {
    EXPECT_NE(std::string(error.what()).find(path_), std::string::npos) << error.what();
  }
}

TEST_F(StoreTest, OtherApplicationsDatabaseIsRefused) {
  execute_sql(open_raw().get(), "CREATE TABLE contacts (name TEXT)");
  try {
    Store::open(path_);
    FAIL() << "another program's database was opened as a store";
  } catch (const InvalidInput& error) {
    EXPECT_NE(std::string(error.what()).find("not a Loom store"), std::string::npos);
  }
}

}  // namespace
}  // namespace loom::core
