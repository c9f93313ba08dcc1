// `loom run`, `loom checkpoint export` and `--init-from` as a user drives them: real ranks under
// mpirun, model files compared byte for byte.

#include "run_loom.hpp"
#include "run_test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::AnyOf;

// CPUs this test may run on, as the ranks it starts would be without binding.
int cpus_allowed_here() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return 1;
  return std::max(1, CPU_COUNT(&allowed));
}

// The thread count of the launch line's `--threads N`; 0 without one.
int threads_in(const std::string& launch_line) {
  const size_t at = launch_line.find("--threads ");
  return at == std::string::npos ? 0 : std::atoi(launch_line.c_str() + at + 10);
}

class LoomRun : public RunTestDirectory {
 protected:
  static std::string bytes(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
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

// A build without CUDA refuses before the launch; a CUDA build refuses on the ranks, where the
// devices are (the launcher may sit on a login node without one): either way in one line.
TEST_F(LoomRun, TheCudaBackendWithoutAUsableDeviceIsRefusedInOneLine) {
  const std::string split = plan("tp2.json", 2, "--tp 2");
  const LoomResult r = run_loom("run '" + split + "' --backend cuda --steps 1");
  if (r.exit_code == 0) GTEST_SKIP() << "this machine has usable CUDA devices: the run trained";
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, AnyOf(HasSubstr("no CUDA backend"), HasSubstr("no usable CUDA device"))) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--backend cuda")) << r.err;
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
  // An explicit --threads wins; a datasheet profile leaves them to the launch rule, which says them.
  EXPECT_THAT(run_loom("run '" + measured + "' --dry-run --threads 3").err, HasSubstr("--threads 3"));
  const std::string datasheet = plan("datasheet.json", 2, "--pp 2");
  const LoomResult decided = run_loom("run '" + datasheet + "' --dry-run");
  EXPECT_GE(threads_in(decided.err), 1) << decided.err;
}

TEST_F(LoomRun, EachRankMayRunOnAsManyCoresAsItHasThreads) {
  // Open MPI binds each of one or two ranks to a single core unless told otherwise: two threads
  // then shared it, and a step took 100× longer. What is checked is the binding, not the time.
  const std::string single = plan("single.json", 1, "");
  const LoomResult r = run_loom("run '" + single + "' --steps 2 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string marker = "rank 0 allowed on ";
  const size_t at = r.out.find(marker);
  ASSERT_NE(at, std::string::npos) << r.out;
  const int allowed = std::atoi(r.out.c_str() + at + marker.size());
  EXPECT_GE(allowed, std::min(2, cpus_allowed_here())) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("2 thread(s) each"));
  // The launch line says how: bound to two cores each, or unbound with a warning where they lack.
  if (r.err.find("--bind-to none") == std::string::npos)
    EXPECT_THAT(r.err, HasSubstr("mpirun -np 1 --map-by slot:PE=2 --bind-to core "));
  else
    EXPECT_THAT(r.err, HasSubstr("loom: warning: 1 rank per node × 2 threads per rank"));
}

TEST_F(LoomRun, TheDefaultThreadsAreDecidedAndShownByTheLauncher) {
  const std::string single = plan("single.json", 1, "");
  const LoomResult r = run_loom("run '" + single + "' --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One rank: every core of this host, each of them its own.
  const int threads = threads_in(r.err);
  EXPECT_GE(threads, 1) << r.err;
  EXPECT_LE(threads, cpus_allowed_here()) << r.err;
  EXPECT_THAT(r.err, HasSubstr("mpirun -np 1 --map-by slot:PE=" + std::to_string(threads) + " --bind-to core "));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("warning")));
  // Four ranks of two threads on fewer than eight cores: unbound, and said in one line.
  if (cpus_allowed_here() < 8) {
    const std::string four = plan("four.json", 4, "--tp 2 --pp 2");
    const LoomResult shared = run_loom("run '" + four + "' --dry-run --threads 2");
    ASSERT_EQ(shared.exit_code, 0) << shared.err;
    EXPECT_THAT(shared.err, HasSubstr("loom: warning: 4 ranks per node × 2 threads per rank = 8 threads on "));
    EXPECT_THAT(shared.err, HasSubstr("--bind-to none"));
    EXPECT_THAT(shared.err, ::testing::Not(HasSubstr("PE=")));
  }
}

TEST_F(LoomRun, AProfileIsLaunchedByTheSameRule) {
  const LoomResult r =
      run_loom("profile --quick --threads 2 --ranks 2 --dry-run --out '" + path("profile.json") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--threads 2"));
  // Bound to two cores each where four are there, else unbound and said.
  if (r.err.find("warning") == std::string::npos) {
    EXPECT_THAT(r.err, HasSubstr("mpirun -np 2 --map-by slot:PE=2 --bind-to core "));
  } else {
    EXPECT_THAT(r.err, HasSubstr("mpirun -np 2 --bind-to none "));
    EXPECT_THAT(r.err, HasSubstr("loom: warning: 2 ranks per node × 2 threads per rank = 4 threads"));
  }
  if (cpus_allowed_here() < 4) {
    EXPECT_THAT(r.err, HasSubstr("--bind-to none"));
  }
  EXPECT_FALSE(fs::exists(path("profile.json")));
}

TEST_F(LoomRun, AFailingRunIsMarkedFailedInTheStore) {
  // A file where the step-2 checkpoint goes makes every rank fail at that checkpoint, after the
  // launch (a checkpoint directory that is itself a file is refused before it).
  const std::string split = plan("dp2.json", 2, "");
  fs::create_directories(path("ckpt"));
  std::ofstream(path("ckpt/step-000002")) << "x";
  const LoomResult r = run_loom("run '" + split + "' --steps 2 --threads 1 --db '" + path("loom.db") +
                                "' --checkpoint-dir '" + path("ckpt") + "'");
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
                          "\"quantity\": \"tp comm (exposed)\"", "\"measured_peak_memory_bytes\"", "\"error_percent\""})
    EXPECT_THAT(compared.out, HasSubstr(key));
  const LoomResult missing = run_loom("compare 7 --db '" + path("loom.db") + "'");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("no run with id 7"));
}

TEST_F(LoomRun, ANonFiniteLossStopsTheRunNamingTheStep) {
  // Weights that hold NaN (the last rows of the embedding, the file's last bytes set to all ones)
  // make the first loss NaN; a learning rate large enough to diverge is refused by the plan's
  // validation.
  const std::string nan_plan = plan("nan.json", 1, "");
  const LoomResult saved =
      run_loom("run '" + nan_plan + "' --steps 0 --threads 1 --save-model '" + path("model.safetensors") + "'");
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  std::string model = bytes(path("model.safetensors"));
  ASSERT_GT(model.size(), 4096u);
  std::fill(model.end() - 4096, model.end(), '\xff');
  std::ofstream(path("model.safetensors"), std::ios::binary | std::ios::trunc) << model;
  const LoomResult r = run_loom("run '" + nan_plan + "' --steps 5 --threads 1 --db '" + path("loom.db") +
                                "' --init-from '" + path("model.safetensors") + "'");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("step 1: the loss is"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 2) << "the launch line and the error:\n" << r.err;
  const std::string query = "sqlite3 '" + path("loom.db") + "' 'select status, reason from runs' > '" + path("status") + "'";
  ASSERT_EQ(std::system(query.c_str()), 0);
  EXPECT_THAT(bytes(path("status")), HasSubstr("failed|step 1: the loss is"));
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
    // A hang guard, not a timing: without the cancel the run would go on for hours.
    ASSERT_LT(std::chrono::steady_clock::now() - cancelled_at, std::chrono::seconds(60)) << "loom run did not stop";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fclose(lines);
  ASSERT_TRUE(WIFEXITED(status)) << "loom run was killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_THAT(processes_mentioning(long_plan), ::testing::IsEmpty());
  const std::string query = "sqlite3 '" + path("loom.db") + "' 'select status, reason from runs' > '" + path("status") + "'";
  ASSERT_EQ(std::system(query.c_str()), 0);
  EXPECT_EQ(bytes(path("status")), "cancelled|\n");
}

}  // namespace
}  // namespace loom::cli::testing
