// The fault drill of `loom run --elastic` (label mpi): a 4-rank data-parallel plan loses a rank
// (SIGKILL) after its step-6 checkpoint; the run goes on by itself on the 3 ranks left, re-planned
// with the same global batch, completes every step, keeps two attempts in the store, and its losses
// after the resume are an uninterrupted 4-rank run's within 1e-5. A second kill that would leave
// fewer than --min-devices ends the run as failed with that reason.

#include "run_loom.hpp"

#include "core/json_reader.hpp"
#include "core/store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

struct Progress {
  std::map<int64_t, double> losses;         // every step line, the last one of a step winning
  std::map<int64_t, double> after_attempt;  // the step lines after the first "attempt" event
  int attempts_announced = 0;
};

Progress progress_in(const std::string& jsonl) {
  Progress progress;
  std::istringstream lines(jsonl);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    const core::Json json = core::Json::parse(line, nullptr, false);
    if (json.is_discarded()) continue;  // a line still being written
    if (json.value("event", "") == "attempt") ++progress.attempts_announced;
    if (!json.contains("step") || !json.contains("loss")) continue;
    const int64_t step = json["step"].get<int64_t>();
    progress.losses[step] = json["loss"].get<double>();
    if (progress.attempts_announced > 0) progress.after_attempt[step] = json["loss"].get<double>();
  }
  return progress;
}

class ElasticRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("loom_elastic_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Global batch 12 on 4 data-parallel ranks: 3 ranks keep it (dp3), and so do 2.
    const LoomResult r = run_loom(
        "init --model loom-tiny --devices-per-node 4 --global-batch-size 12 --micro-batch-size 1 "
        "--dtype fp32 "
        "--train-iters 30 -o '" +
        path("plan.json") + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  pid_t start_run(const std::string& flags) {
    const std::string command = std::string("exec '") + LOOM_BINARY + "' run '" +
                                path("plan.json") + "' " + flags + " >'" + path("run.out") +
                                "' 2>'" + path("run.err") + "'";
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
    return pid;
  }
  Progress progress() const { return progress_in(read_file(path("run.out"))); }

  // This test's ranks, of whichever attempt (their command lines name a plan in this test's
  // directory).
  std::vector<pid_t> rank_pids() const {
    std::vector<pid_t> pids;
    for (const auto& entry : fs::directory_iterator("/proc")) {
      const std::string name = entry.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string cmdline = read_file(entry.path() / "cmdline");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      if (cmdline.find("loom-exec run ") != std::string::npos &&
          cmdline.find(dir_.string()) != std::string::npos &&
          cmdline.find("mpirun") == std::string::npos)
        pids.push_back(pid_t(std::stoi(name)));
    }
    return pids;
  }

  // Waits until `done` holds (polling the run's output), at most `limit`.
  template <typename Condition>
  bool wait_for(Condition done, std::chrono::seconds limit = std::chrono::seconds(120)) const {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }

  // Waits for `loom run` to exit; its wait status.
  int wait_exit(pid_t run, std::chrono::seconds limit = std::chrono::seconds(180)) {
    int status = 0;
    const auto deadline = Clock::now() + limit;
    while (waitpid(run, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(run, SIGKILL);
        waitpid(run, &status, 0);
        ADD_FAILURE() << "loom run --elastic did not end: " << read_file(path("run.err"));
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return status;
  }

  fs::path dir_;
};

TEST_F(ElasticRun, ARankKilledAfterACheckpointIsReplacedByAReplannedAttemptThatFinishesTheRun) {
  const LoomResult reference = run_loom("run '" + path("plan.json") + "' --threads 1 --jsonl");
  ASSERT_EQ(reference.exit_code, 0) << reference.err;
  const std::map<int64_t, double> expected = progress_in(reference.out).losses;
  ASSERT_EQ(expected.size(), 30u);

  const std::string db = path("loom.db"), checkpoints = path("ckpt");
  const pid_t run =
      start_run("--threads 1 --jsonl --db '" + db + "' --checkpoint-dir '" + checkpoints +
                "' --checkpoint-every 3 --elastic --heartbeat-timeout 60");
  // After the step-6 checkpoint: step 7's line comes after it is complete.
  ASSERT_TRUE(wait_for([&] { return progress().losses.contains(7); }))
      << read_file(path("run.err"));
  ASSERT_TRUE(fs::exists(fs::path(checkpoints) / "step-000006" / "manifest.json"));
  const std::vector<pid_t> ranks = rank_pids();
  ASSERT_EQ(ranks.size(), 4u);
  ASSERT_EQ(kill(ranks.back(), SIGKILL), 0);
  const auto killed_at = Clock::now();
  // Recovery: from the kill to the first step the new attempt trains.
  const bool recovered = wait_for([&] { return !progress().after_attempt.empty(); });
  const double recovery_s = std::chrono::duration<double>(Clock::now() - killed_at).count();
  ASSERT_TRUE(recovered) << read_file(path("run.err"));
  std::cout << "[ elastic  ] kill -> first step of attempt 2: " << recovery_s << " s\n";
  RecordProperty("recovery_seconds", std::to_string(recovery_s));

  const int status = wait_exit(run);
  const std::string err = read_file(path("run.err"));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;
  EXPECT_TRUE(rank_pids().empty()) << "a rank outlived the run";
  EXPECT_THAT(err, HasSubstr("attempt 1 on 4 device(s) failed: "));
  EXPECT_THAT(err, HasSubstr("attempt 2: tp1 pp1 dp3"));

  const Progress done = progress();
  ASSERT_EQ(done.attempts_announced, 1);
  EXPECT_EQ(done.losses.size(), 30u) << "every step trained";
  ASSERT_FALSE(done.after_attempt.empty());
  EXPECT_EQ(done.after_attempt.begin()->first, 7) << "resumed after the step-6 checkpoint";
  EXPECT_EQ(done.after_attempt.rbegin()->first, 30);
  for (const auto& [step, loss] : done.after_attempt)
    EXPECT_LE(std::abs(loss - expected.at(step)), 1e-5 * std::abs(expected.at(step)))
        << "step " << step;

  core::Store store = core::Store::open(db, core::Store::OpenMode::existing);
  const std::vector<core::RunRow> runs = store.list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs.front().status, core::RunStatus::completed);
  // The run records where its checkpoints are (the GUI re-plans a failed run from them).
  EXPECT_EQ(core::Json::parse(runs.front().run_json).value("checkpoint_dir", ""),
            std::filesystem::absolute(checkpoints).lexically_normal().string());
  const std::vector<core::RunAttemptRow> attempts = store.attempts(runs.front().id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].status, core::RunStatus::failed);
  EXPECT_EQ(attempts[0].devices, 4);
  ASSERT_TRUE(attempts[0].cause.has_value());
  EXPECT_THAT(*attempts[0].cause, HasSubstr("killed by signal 9"));
  EXPECT_EQ(attempts[1].status, core::RunStatus::completed);
  EXPECT_EQ(attempts[1].devices, 3);
  EXPECT_EQ(attempts[1].start_step, 7);
  EXPECT_EQ(attempts[1].end_step, 30);
  EXPECT_NE(attempts[1].plan_id, attempts[0].plan_id);
  ASSERT_TRUE(attempts[1].prediction_id.has_value())
      << "the new attempt is compared with its own prediction";
  EXPECT_EQ(store.steps(runs.front().id).size(), 30u);
  // The new plan lies next to the checkpoints; the user's plan is untouched.
  EXPECT_TRUE(fs::exists(path("ckpt.run-1.attempt-2.json")));

  const LoomResult listed = run_loom("runs --db '" + db + "' --attempts");
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("dp3"));
  const LoomResult compared = run_loom("compare 1 --db '" + db + "' --attempt 2");
  EXPECT_EQ(compared.exit_code, 0) << compared.err;
}

TEST_F(ElasticRun, AKillThatLeavesFewerThanMinDevicesFailsTheRunWithTheReason) {
  const std::string db = path("loom.db"), checkpoints = path("ckpt");
  const pid_t run = start_run("--threads 1 --jsonl --db '" + db + "' --checkpoint-dir '" +
                              checkpoints + "' --checkpoint-every 3 --elastic --min-devices 3");
  ASSERT_TRUE(wait_for([&] { return progress().losses.contains(4); }))
      << read_file(path("run.err"));
  std::vector<pid_t> ranks = rank_pids();
  ASSERT_EQ(ranks.size(), 4u);
  ASSERT_EQ(kill(ranks.back(), SIGKILL), 0);
  // The 3 ranks left are enough: attempt 2 trains; a second kill would leave 2.
  ASSERT_TRUE(wait_for([&] { return !progress().after_attempt.empty(); }))
      << read_file(path("run.err"));
  ranks = rank_pids();
  ASSERT_EQ(ranks.size(), 3u);
  ASSERT_EQ(kill(ranks.back(), SIGKILL), 0);

  const int status = wait_exit(run, std::chrono::seconds(60));
  const std::string err = read_file(path("run.err"));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << err;
  EXPECT_TRUE(rank_pids().empty()) << "a rank outlived the run";
  EXPECT_THAT(err, HasSubstr("2 device(s) left, fewer than --min-devices 3"));
  EXPECT_THAT(err, HasSubstr("run 1 marked failed"));

  core::Store store = core::Store::open(db, core::Store::OpenMode::existing);
  const core::RunRow failed = store.run(1);
  EXPECT_EQ(failed.status, core::RunStatus::failed);
  ASSERT_TRUE(failed.reason.has_value());
  EXPECT_THAT(*failed.reason, HasSubstr("fewer than --min-devices 3"));
  EXPECT_THAT(*failed.reason, HasSubstr("killed by signal 9"));
  const std::vector<core::RunAttemptRow> attempts = store.attempts(1);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].status, core::RunStatus::failed);
  EXPECT_EQ(attempts[1].status, core::RunStatus::failed);
  EXPECT_EQ(attempts[1].devices, 3);
}

// A rank that hangs (stopped with SIGSTOP: it neither dies nor answers its collectives) stops rank
// 0's progress lines; after --heartbeat-timeout the attempt is ended and the run goes on.
TEST_F(ElasticRun, AHungRankIsCaughtByTheHeartbeatTimeout) {
  const std::string db = path("loom.db"), checkpoints = path("ckpt");
  const pid_t run =
      start_run("--threads 1 --jsonl --db '" + db + "' --checkpoint-dir '" + checkpoints +
                "' --checkpoint-every 3 --elastic --heartbeat-timeout 5");
  ASSERT_TRUE(wait_for([&] { return progress().losses.contains(4); }))
      << read_file(path("run.err"));
  const std::vector<pid_t> ranks = rank_pids();
  ASSERT_EQ(ranks.size(), 4u);
  ASSERT_EQ(kill(ranks.back(), SIGSTOP), 0);

  const int status = wait_exit(run);
  const std::string err = read_file(path("run.err"));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;
  EXPECT_TRUE(rank_pids().empty()) << "a rank outlived the run";
  EXPECT_EQ(progress().losses.size(), 30u);
  core::Store store = core::Store::open(db, core::Store::OpenMode::existing);
  EXPECT_EQ(store.run(1).status, core::RunStatus::completed);
  const std::vector<core::RunAttemptRow> attempts = store.attempts(1);
  ASSERT_EQ(attempts.size(), 2u);
  ASSERT_TRUE(attempts[0].cause.has_value());
  EXPECT_THAT(*attempts[0].cause, HasSubstr("no progress from rank 0 for 5 s"));
}

TEST_F(ElasticRun, RefusesWithoutCheckpointsInOneLine) {
  const LoomResult r =
      run_loom("run '" + path("plan.json") + "' --elastic --checkpoint-dir '" + path("ckpt") + "'");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--elastic needs --checkpoint-dir and --checkpoint-every"));
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
  const LoomResult orphan = run_loom("run '" + path("plan.json") + "' --min-devices 2");
  EXPECT_EQ(orphan.exit_code, 2) << orphan.err;
  EXPECT_THAT(orphan.err, HasSubstr("--elastic"));
  // A floor above the plan's own devices could never be met: refused before anything starts.
  const LoomResult floor = run_loom("run '" + path("plan.json") + "' --elastic --checkpoint-dir '" + path("ckpt") +
                                    "' --checkpoint-every 2 --min-devices 99");
  EXPECT_EQ(floor.exit_code, 2) << floor.err;
  EXPECT_THAT(floor.err, HasSubstr("--min-devices=99 is more than the plan's 4 devices"));
  EXPECT_FALSE(std::filesystem::exists(path("ckpt"))) << "nothing written";
}

}  // namespace
}  // namespace loom::cli::testing
