// `loom run`, `loom checkpoint export` and `--init-from` as a user drives them: real ranks under
// mpirun, model files compared byte for byte.

#include "run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class LoomRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("loom_run_test_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // A fp32 plan of Loom's small test model on `devices` ranks; `extra` are `loom init` flags.
  std::string plan(const std::string& name, int devices, const std::string& extra) {
    const LoomResult r = run_loom("init --model loom-tiny --devices-per-node " + std::to_string(devices) +
                                  " --global-batch-size 8 --micro-batch-size 2 --dtype fp32 --train-iters 20 " + extra +
                                  " -o '" + path(name) + "'");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return path(name);
  }
  static std::string bytes(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  fs::path dir_;
};

TEST_F(LoomRun, CheckpointExportEqualsTheSavedModelAndInitFromRoundTripsAcrossLayouts) {
  const std::string split = plan("tp2pp2.json", 4, "--tp 2 --pp 2");
  const LoomResult trained = run_loom("run '" + split + "' --steps 3 --threads 1 --jsonl --checkpoint-dir '" +
                                      path("ckpt") + "' --save-model '" + path("saved.safetensors") + "'");
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const LoomResult exported =
      run_loom("checkpoint export '" + path("ckpt") + "' --out '" + path("exported.safetensors") + "'");
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const std::string saved = bytes(path("saved.safetensors"));
  ASSERT_GT(saved.size(), 100000u);
  EXPECT_EQ(bytes(path("exported.safetensors")), saved);
  // Loaded into one rank and saved again without training: the same file.
  const std::string single = plan("single.json", 1, "");
  const LoomResult converted = run_loom("run '" + single + "' --steps 0 --threads 1 --init-from '" +
                                        path("exported.safetensors") + "' --save-model '" + path("again.safetensors") + "'");
  ASSERT_EQ(converted.exit_code, 0) << converted.err;
  EXPECT_EQ(bytes(path("again.safetensors")), saved);
}

TEST_F(LoomRun, BadInputIsRefusedBeforeAnyRankStarts) {
  const std::string split = plan("tp2.json", 2, "--tp 2");
  const std::pair<std::string, std::string> cases[] = {
      {"--data '" + path("missing.bin") + "'", "no such file"},
      {"--resume", "--resume needs --checkpoint-dir"},
      {"--backend cuda", "no CUDA backend"},
      {"--steps -1", "must be 0 (load and save only) or positive"},
      {"--init-from '" + path("missing.safetensors") + "'", "no such file"},
  };
  for (const auto& [flags, message] : cases) {
    const LoomResult r = run_loom("run '" + split + "' " + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(message)) << flags;
  }
  const LoomResult missing = run_loom("run '" + path("nope.json") + "'");
  EXPECT_EQ(missing.exit_code, 2);
}

TEST_F(LoomRun, DryRunShowsTheLauncherCommand) {
  const std::string split = plan("tp2pp2.json", 4, "--tp 2 --pp 2");
  const LoomResult r = run_loom("run '" + split + "' --steps 5 --dry-run");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("mpirun -np 4"));
  EXPECT_THAT(r.err, HasSubstr("loom-exec run"));
  EXPECT_THAT(r.err, HasSubstr("--steps 5"));
}

TEST_F(LoomRun, AMeasuredCpuProfileSetsTheThreadsPerRank) {
  // The prediction holds for ranks of as many threads as the profile was measured with.
  const std::string measured = plan("measured.json", 2, "--pp 2 --profile cpu-epyc-2core-vm");
  const LoomResult r = run_loom("run '" + measured + "' --dry-run");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--threads 1"));
  // An explicit --threads wins; a datasheet profile leaves the executor its default.
  EXPECT_THAT(run_loom("run '" + measured + "' --dry-run --threads 3").err, HasSubstr("--threads 3"));
  const std::string datasheet = plan("datasheet.json", 2, "--pp 2");
  EXPECT_THAT(run_loom("run '" + datasheet + "' --dry-run").err, ::testing::Not(HasSubstr("--threads")));
}

TEST_F(LoomRun, AFailingRunIsMarkedFailedInTheStore) {
  // A checkpoint directory that is a file makes every rank fail at its first checkpoint.
  const std::string split = plan("dp2.json", 2, "");
  std::ofstream(path("not-a-dir")) << "x";
  const LoomResult r = run_loom("run '" + split + "' --steps 2 --threads 1 --db '" + path("loom.db") +
                                "' --checkpoint-dir '" + path("not-a-dir") + "'");
  EXPECT_NE(r.exit_code, 0);
  const std::string query = "sqlite3 '" + path("loom.db") + "' 'select status from runs' > '" + path("status") + "'";
  ASSERT_EQ(std::system(query.c_str()), 0);
  EXPECT_EQ(bytes(path("status")), "failed\n");
}

TEST_F(LoomRun, RunsListsTheRunAndCompareSetsItBesideItsPrediction) {
  const std::string split = plan("tp2.json", 2, "--tp 2");
  const LoomResult trained = run_loom("run '" + split + "' --steps 6 --threads 1 --db '" + path("loom.db") + "'");
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const LoomResult runs = run_loom("runs --db '" + path("loom.db") + "' --format json");
  ASSERT_EQ(runs.exit_code, 0) << runs.err;
  EXPECT_THAT(runs.out, HasSubstr("\"status\": \"completed\""));
  EXPECT_THAT(runs.out, HasSubstr("\"steps\": 6"));
  const LoomResult compared = run_loom("compare 1 --db '" + path("loom.db") + "' --format json");
  ASSERT_EQ(compared.exit_code, 0) << compared.err;
  for (const char* key : {"\"warmup_steps\": 2", "\"measured_steps\": 4", "\"quantity\": \"step time\"",
                          "\"quantity\": \"tp comm\"", "\"measured_peak_memory_bytes\"", "\"error_percent\""})
    EXPECT_THAT(compared.out, HasSubstr(key));
  const LoomResult missing = run_loom("compare 7 --db '" + path("loom.db") + "'");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("no run with id 7"));
}

TEST_F(LoomRun, ANonFiniteLossStopsTheRunNamingTheStep) {
  // A learning rate of 1e30 blows the weights up in the first update.
  std::string text = bytes(plan("nan.json", 1, ""));
  const std::string lr = "\"lr\": 0.0006";
  ASSERT_NE(text.find(lr), std::string::npos);
  text.replace(text.find(lr), lr.size(), "\"lr\": 1e30");
  std::ofstream(path("nan.json")) << text;
  const LoomResult r = run_loom("run '" + path("nan.json") + "' --steps 5 --threads 1 --db '" + path("loom.db") + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("step 2: the loss is"));
  const std::string query = "sqlite3 '" + path("loom.db") + "' 'select status, reason from runs' > '" + path("status") + "'";
  ASSERT_EQ(std::system(query.c_str()), 0);
  EXPECT_THAT(bytes(path("status")), HasSubstr("failed|step 2: the loss is"));
}

// Processes whose command line holds `needle` (here: a plan file only this test uses).
std::vector<std::string> processes_mentioning(const std::string& needle) {
  std::vector<std::string> found;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream file(entry.path() / "cmdline", std::ios::binary);
    std::string command((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    std::replace(command.begin(), command.end(), '\0', ' ');
    if (command.find(needle) != std::string::npos) found.push_back(name + ": " + command);
  }
  return found;
}

TEST_F(LoomRun, SigtermCancelsTheRunStopsEveryRankAndMarksItCancelled) {
  const std::string long_plan = plan("long.json", 2, "");
  // `loom run` as the GUI starts it, its standard output read line by line.
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t loom = fork();
  ASSERT_GE(loom, 0);
  if (loom == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    const std::string db = path("loom.db");
    execl(LOOM_BINARY, LOOM_BINARY, "run", long_plan.c_str(), "--steps", "100000", "--threads", "1", "--jsonl",
          "--db", db.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* lines = fdopen(out[0], "r");
  char buffer[4096];
  std::vector<std::string> read;
  while (read.size() < 2 && std::fgets(buffer, sizeof buffer, lines)) read.emplace_back(buffer);
  ASSERT_EQ(read.size(), 2u) << "loom run ended before its first step";
  EXPECT_EQ(read[0], "{\"event\":\"run\",\"run_id\":1}\n");
  EXPECT_THAT(read[1], HasSubstr("\"step\":1,"));

  const auto cancelled_at = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(loom, SIGTERM), 0);
  int status = 0;
  while (waitpid(loom, &status, WNOHANG) == 0) {
    ASSERT_LT(std::chrono::steady_clock::now() - cancelled_at, std::chrono::seconds(20)) << "loom run did not stop";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fclose(lines);
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, std::chrono::seconds(12));
  ASSERT_TRUE(WIFEXITED(status)) << "loom run was killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_THAT(processes_mentioning(long_plan), ::testing::IsEmpty());
  const std::string query = "sqlite3 '" + path("loom.db") + "' 'select status, reason from runs' > '" + path("status") + "'";
  ASSERT_EQ(std::system(query.c_str()), 0);
  EXPECT_EQ(bytes(path("status")), "failed|cancelled by the user\n");
}

}  // namespace
}  // namespace loom::cli::testing
