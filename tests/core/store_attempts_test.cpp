// The attempts of a run (schema version 5): a store of version 4 is upgraded in place with every
// run as its own attempt 1, and begin_run / finish_run keep attempt 1 up to date while an elastic
// run's later attempts each keep their own plan, devices, steps and cause.
#include "core/error.hpp"
#include "core/sqlite_handle.hpp"
#include "core/store.hpp"
#include "core/store_schema.hpp"
#include "tests/core/store_test_support.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace loom::core {
namespace {

using namespace loom::core::store_testing;

TEST_F(StoreTest, VersionFourStoreGivesEveryRunItsAttemptOneWithNothingLost) {
  {
    const auto raw = open_raw();
    Transaction transaction(raw.get());
    for (int i = 0; i < 4; ++i)
      execute_sql(raw.get(), std::string(store_migrations()[size_t(i)].sql));
    execute_sql(raw.get(), fmt::format("PRAGMA application_id = {}", kLoomApplicationId));
    execute_sql(raw.get(), "PRAGMA user_version = 4");
    execute_sql(
        raw.get(),
        "INSERT INTO plans (id, created_at, name, model_name, world_size, plan_json) VALUES "
        "(3, '2026-01-01T00:00:00.000Z', 'p', 'gpt2-124m', 4, '{}'),"
        "(5, '2026-01-01T00:00:00.000Z', 'q', 'gpt2-124m', 2, '{}');"
        "INSERT INTO predictions (id, plan_id, created_at, profile_name, prediction_json) VALUES "
        "(9, 3, '2026-01-01T00:00:00.000Z', 'cpu', '{}');"
        "INSERT INTO runs (id, plan_id, prediction_id, backend, status, reason, started_at, "
        "finished_at, "
        "source) VALUES "
        "(1, 3, 9, 'cpu', 'completed', NULL, '2026-01-01T00:00:00.000Z', "
        "'2026-01-01T00:01:00.000Z', 'loom'),"
        "(2, 5, NULL, 'cpu', 'failed', 'rank 1 died', '2026-01-01T00:02:00.000Z', "
        "'2026-01-01T00:03:00.000Z', 'megatron'),"
        "(4, 5, NULL, 'cpu', 'running', NULL, '2026-01-01T00:04:00.000Z', NULL, 'loom');"
        "INSERT INTO steps (run_id, step, loss) VALUES (1, 1, 5.0), (1, 2, 4.5), (1, 3, 4.0), (2, "
        "10, 5.5);"
        "INSERT INTO rank_stats (run_id, rank, peak_memory_bytes) VALUES (1, 0, 123456789);");
    transaction.commit();
  }
  Store store = Store::open(path_);
  EXPECT_EQ(store.schema_version(), 5);
  ASSERT_EQ(store.list_runs().size(), 3u);
  EXPECT_EQ(store.steps(1).size(), 3u);
  EXPECT_EQ(store.rank_stats(1).at(0).peak_memory_bytes, 123456789);
  EXPECT_EQ(store.run(2).source, "megatron");

  const std::vector<RunAttemptRow> first = store.attempts(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].attempt, 1);
  EXPECT_EQ(first[0].plan_id, 3);
  EXPECT_EQ(first[0].prediction_id, 9);
  EXPECT_EQ(first[0].devices, 4);
  EXPECT_EQ(first[0].status, RunStatus::completed);
  EXPECT_EQ(first[0].started_at, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(first[0].finished_at, "2026-01-01T00:01:00.000Z");
  EXPECT_EQ(first[0].start_step, 1);
  EXPECT_EQ(first[0].end_step, 3);

  const std::vector<RunAttemptRow> failed = store.attempts(2);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].status, RunStatus::failed);
  EXPECT_EQ(failed[0].cause, "rank 1 died");
  EXPECT_EQ(failed[0].devices, 2);
  EXPECT_EQ(failed[0].start_step, 10);
  EXPECT_EQ(failed[0].end_step, 10);

  // A run still running at the upgrade keeps going: its attempt 1 takes its steps and its end.
  const std::vector<RunAttemptRow> running = store.attempts(4);
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].status, RunStatus::running);
  EXPECT_EQ(running[0].start_step, std::nullopt);
  store.append_steps(4, step_batch(1, 2));
  store.finish_run(4, RunStatus::completed, "");
  EXPECT_EQ(store.attempts(4)[0].status, RunStatus::completed);
  EXPECT_EQ(store.attempts(4)[0].end_step, 2);
}

TEST_F(StoreTest, BeginAndFinishRunKeepAttemptOne) {
  Store store = Store::open(path_);
  const std::int64_t plan_id = store.insert_plan(sample_plan());
  const std::int64_t run_id = store.begin_run(sample_run(plan_id));
  std::vector<RunAttemptRow> attempts = store.attempts(run_id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].attempt, 1);
  EXPECT_EQ(attempts[0].plan_id, plan_id);
  EXPECT_EQ(attempts[0].devices, 8);
  EXPECT_EQ(attempts[0].status, RunStatus::running);
  EXPECT_EQ(attempts[0].started_at, store.run(run_id).started_at);
  store.append_steps(run_id, step_batch(0, 5));
  store.finish_run(run_id, RunStatus::failed, "NaN loss at step 4");
  attempts = store.attempts(run_id);
  EXPECT_EQ(attempts[0].status, RunStatus::failed);
  EXPECT_EQ(attempts[0].cause, "NaN loss at step 4");
  EXPECT_EQ(attempts[0].start_step, 0);
  EXPECT_EQ(attempts[0].end_step, 4);
  EXPECT_TRUE(attempts[0].finished_at.has_value());
  EXPECT_TRUE(store.attempts(12345).empty());
}

TEST_F(StoreTest, ElasticRunContinuesAsNewAttemptsOnTheirOwnPlans) {
  Store store = Store::open(path_);
  const std::int64_t plan_id = store.insert_plan(sample_plan());
  PlanRow smaller = sample_plan();
  smaller.world_size = 6;
  smaller.dp = 1;
  const std::int64_t replanned = store.insert_plan(smaller);
  const std::int64_t run_id = store.begin_run(sample_run(plan_id));
  store.append_steps(run_id, step_batch(1, 10));

  RunAttemptRow next;
  next.run_id = run_id;
  next.plan_id = replanned;
  // Attempt 1 is still running.
  EXPECT_THROW(store.begin_attempt(next), InvalidInput);
  store.finish_attempt(run_id, RunStatus::failed, "rank 3 lost (node down)");
  EXPECT_EQ(store.run(run_id).status, RunStatus::running);
  EXPECT_THROW(store.finish_attempt(run_id, RunStatus::failed, "twice"), InvalidInput);

  next.start_step = 9;  // resumed from the checkpoint of step 8
  EXPECT_EQ(store.begin_attempt(next), 2);
  store.append_steps(run_id, step_batch(9, 6));  // rewrites steps 9 and 10
  store.finish_run(run_id, RunStatus::completed, "");

  const std::vector<RunAttemptRow> attempts = store.attempts(run_id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].status, RunStatus::failed);
  EXPECT_EQ(attempts[0].cause, "rank 3 lost (node down)");
  EXPECT_EQ(attempts[0].start_step, 1);
  EXPECT_EQ(attempts[0].end_step, 10);
  EXPECT_EQ(attempts[1].attempt, 2);
  EXPECT_EQ(attempts[1].plan_id, replanned);
  EXPECT_EQ(attempts[1].devices, 6);
  EXPECT_EQ(attempts[1].status, RunStatus::completed);
  EXPECT_EQ(attempts[1].start_step, 9);
  EXPECT_EQ(attempts[1].end_step, 14);
  EXPECT_EQ(store.steps(run_id).size(), 14u);
  EXPECT_EQ(store.run(run_id).status, RunStatus::completed);

  // A finished run takes no more attempts; an unknown plan is refused.
  EXPECT_THROW(store.begin_attempt(next), InvalidInput);
  next.plan_id = 999;
  EXPECT_THROW(store.begin_attempt(next), InvalidInput);
}

TEST_F(StoreTest, ImportedRunIsItsOwnFinishedAttempt) {
  Store store = Store::open(path_);
  RunRow run;
  run.backend = "cuda";
  run.status = RunStatus::failed;
  run.reason = "the log ends early";
  run.source = "megatron";
  const std::int64_t id = store.insert_finished_run(
      sample_plan(), std::nullopt, run,
      {{10, 7.5, 1.25, 1000.0, 3e-4, 2.0}, {20, 7.0, 1.0, 1250.0, 3e-4, 1.5}}, {});
  const std::vector<RunAttemptRow> attempts = store.attempts(id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].status, RunStatus::failed);
  EXPECT_EQ(attempts[0].cause, "the log ends early");
  EXPECT_EQ(attempts[0].start_step, 10);
  EXPECT_EQ(attempts[0].end_step, 20);
  EXPECT_EQ(attempts[0].finished_at, store.run(id).finished_at);
}

}  // namespace
}  // namespace loom::core
