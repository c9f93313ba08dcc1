// `loom run` with inputs a careless user hands it: everything that can be checked is checked
// before a rank starts (`loom-exec check`), each refusal one line and status 2 with nothing left
// in the store; checkpoints that are pruned as asked; and a run stopped with Ctrl-C whose store
// holds every step its newest checkpoint holds, and compares.

#include "run_loom.hpp"
#include "run_test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class RunInputs : public RunTestDirectory {
 protected:
  std::string quoted(const std::string& name) const { return "'" + path(name) + "'"; }
  // Sorted names of the step directories in a checkpoint directory.
  std::vector<std::string> steps_in(const std::string& name) const {
    std::vector<std::string> steps;
    for (const auto& entry : fs::directory_iterator(path(name))) steps.push_back(entry.path().filename().string());
    std::sort(steps.begin(), steps.end());
    return steps;
  }
  std::string query(const std::string& sql) const {
    const std::string out = path("query.out");
    EXPECT_EQ(std::system(("sqlite3 " + quoted("loom.db") + " '" + sql + "' > '" + out + "'").c_str()), 0);
    return read_file(out);
  }
};

TEST_F(RunInputs, WhatARankWouldRefuseIsRefusedBeforeTheLaunchInOneLine) {
  const std::string tp2 = plan("tp2.json", 2, "--tp 2");
  // A model file of the same model at another sequence length: its position table is the wrong shape.
  const std::string short_plan = plan("seq32.json", 1, "--seq-length 32");
  const LoomResult saved = run_loom("run '" + short_plan + "' --steps 0 --threads 1 --save-model " + quoted("seq32.safetensors"));
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  const std::string model = read_file(path("seq32.safetensors"));
  std::ofstream(path("truncated.safetensors"), std::ios::binary) << model.substr(0, model.size() / 2);
  std::ofstream(path("short.txt")) << "too short for one sequence of 64 tokens";
  std::ofstream(path("a-file")) << "not a directory";
  // A checkpoint of another model (sequence 32 instead of 64) to resume from: another plan of the
  // same model would be resharded (issue 22), another model is refused.
  ASSERT_EQ(run_loom("run '" + short_plan + "' --steps 1 --threads 1 --checkpoint-dir " + quoted("seq32-ckpt")).exit_code, 0);

  const std::pair<std::string, std::string> cases[] = {
      {"--data " + quoted("short.txt"), "is shorter than one row of 65 tokens"},
      {"--init-from " + quoted("seq32.safetensors"), "tensor wpe.weight has shape [32, 128]; the plan's model needs [64, 128]"},
      {"--init-from " + quoted("truncated.safetensors"), "truncated.safetensors"},
      {"--checkpoint-every -5", "--checkpoint-every=-5 must be 0 (only at the end) or positive"},
      {"--checkpoint-every 5", "--checkpoint-every=5 needs --checkpoint-dir"},
      {"--keep-checkpoints -1 --checkpoint-dir " + quoted("ckpt"), "--keep-checkpoints=-1 must be 0 (keep all) or positive"},
      {"--checkpoint-dir " + quoted("a-file"), "exists and is not a directory"},
      {"--save-model " + quoted("no-such-dir/model.safetensors"), "does not exist"},
      {"--save-model -", "--save-model needs a file"},
      {"--resume --checkpoint-dir " + quoted("seq32-ckpt"), "was written for seq-length=32, this plan has seq-length=64"},
      {"--steps -1", "--steps=-1 must be 0 (load and save only) or positive"},
      {"--threads -3", "--threads"},
  };
  for (const auto& [flags, message] : cases) {
    const LoomResult r = run_loom("run '" + tp2 + "' --db " + quoted("loom.db") + " " + flags);
    EXPECT_FALSE(r.signalled) << flags << "\n" << r.err;
    EXPECT_EQ(r.exit_code, 2) << flags << "\n" << r.err;
    EXPECT_THAT(r.err, StartsWith("loom: error: ")) << flags;
    EXPECT_THAT(r.err, HasSubstr(message)) << flags;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << flags << "\none line only:\n" << r.err;
    EXPECT_FALSE(fs::exists(path("loom.db"))) << flags << ": a refused run leaves no store behind";
    EXPECT_FALSE(fs::exists(path("ckpt"))) << flags;
  }
}

TEST_F(RunInputs, OnlyTheNewestCheckpointsAreKeptWhenAsked) {
  const std::string single = plan("single.json", 1);
  const LoomResult r = run_loom("run '" + single + "' --steps 8 --threads 1 --checkpoint-dir " + quoted("ckpt") +
                                " --checkpoint-every 2 --keep-checkpoints 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(steps_in("ckpt"), (std::vector<std::string>{"step-000006", "step-000008"}));
  // The kept ones resume: two more steps continue from step 8.
  const LoomResult resumed = run_loom("run '" + single + "' --steps 10 --threads 1 --checkpoint-dir " + quoted("ckpt") +
                                      " --checkpoint-every 2 --keep-checkpoints 2 --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_THAT(resumed.out, HasSubstr("resuming after step 8"));
  EXPECT_EQ(steps_in("ckpt"), (std::vector<std::string>{"step-000008", "step-000010"}));
}

// `loom run --jsonl > /dev/full` once ended with status 0 with every line lost. The ranks' lines
// pass through mpirun, which cannot tell them that its output failed, so the run trains to its
// end and is stored as it went; `loom` then fails, saying why in one line.
TEST_F(RunInputs, AStandardOutputThatCannotBeWrittenFailsTheRun) {
  if (!fs::is_character_file("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  const std::string single = plan("single.json", 1);
  const int status = std::system(("'" + std::string(LOOM_BINARY) + "' run '" + single +
                                  "' --steps 3 --threads 1 --jsonl --db " + quoted("loom.db") + " >/dev/full 2>" +
                                  quoted("err"))
                                     .c_str());
  ASSERT_TRUE(WIFEXITED(status));
  const std::string err = read_file(path("err"));
  EXPECT_EQ(WEXITSTATUS(status), 1) << err;
  EXPECT_THAT(err, HasSubstr("cannot write to standard output: No space left on device"));
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << "the launch line and the error:\n" << err;
  EXPECT_EQ(query("select count(*) from steps"), "3\n") << "the store has what the lost lines said";
}

// Ctrl-C between a step and its checkpoint once left the store a step short of the checkpoint.
TEST_F(RunInputs, AStoppedRunHoldsEveryCheckpointedStepAndCompares) {
  const std::string single = plan("single.json", 1);
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t loom = fork();
  ASSERT_GE(loom, 0);
  if (loom == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    const std::string db = path("loom.db"), ckpt = path("ckpt");
    execl(LOOM_BINARY, LOOM_BINARY, "run", single.c_str(), "--steps", "100000", "--threads", "1", "--jsonl", "--db",
          db.c_str(), "--checkpoint-dir", ckpt.c_str(), "--checkpoint-every", "1", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* lines = fdopen(out[0], "r");
  char buffer[4096];
  int steps_seen = 0;
  while (steps_seen < 12 && std::fgets(buffer, sizeof buffer, lines))
    if (std::string(buffer).find("\"step\":") != std::string::npos) ++steps_seen;
  ASSERT_EQ(steps_seen, 12) << "loom run ended early";
  ASSERT_EQ(kill(loom, SIGINT), 0);
  int status = 0;
  ASSERT_EQ(waitpid(loom, &status, 0), loom);
  std::fclose(lines);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);

  int newest_checkpoint = 0;
  for (const std::string& step : steps_in("ckpt"))
    if (fs::exists(path("ckpt/" + step + "/manifest.json"))) newest_checkpoint = std::max(newest_checkpoint, std::stoi(step.substr(5)));
  ASSERT_GE(newest_checkpoint, 12);
  const int stored = std::stoi(query("select max(step) from steps"));
  EXPECT_GE(stored, newest_checkpoint) << "the store must hold every step the newest checkpoint holds";
  EXPECT_EQ(query("select status from runs"), "cancelled\n");

  const LoomResult compared = run_loom("compare 1 --db " + quoted("loom.db"));
  ASSERT_EQ(compared.exit_code, 0) << compared.err;
  EXPECT_THAT(compared.out, HasSubstr("step time"));
  EXPECT_THAT(compared.out, HasSubstr("not measured"));
  EXPECT_THAT(compared.out, HasSubstr("only its steps are compared"));
}

}  // namespace
}  // namespace loom::cli::testing
