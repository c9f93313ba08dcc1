// Faults during a real run (label mpi): a rank killed with SIGKILL, a checkpoint that cannot be
// written, and a checkpoint directory on a file system that fills up. `loom run` must end
// (non-zero, within seconds), the run must be `failed` in the store with the reason, the
// checkpoints written before must be untouched, and resuming from the newest one must give the
// losses of a run that was never interrupted, bit for bit.

#include "run_loom.hpp"

#include "core/json_reader.hpp"
#include "core/store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// Step → loss, exactly as printed (nlohmann prints doubles so that they read back bit for bit).
std::map<int64_t, double> losses_in(const std::string& jsonl) {
  std::map<int64_t, double> losses;
  std::istringstream lines(jsonl);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    const core::Json json = core::Json::parse(line);
    if (json.contains("step") && json.contains("loss"))
      losses[json["step"].get<int64_t>()] = json["loss"].get<double>();
  }
  return losses;
}

// Every file of every complete checkpoint step (one with a manifest), with its bytes.
std::map<std::string, std::string> complete_checkpoints(const fs::path& dir) {
  std::map<std::string, std::string> files;
  if (!fs::exists(dir)) return files;
  for (const auto& step : fs::directory_iterator(dir)) {
    if (!fs::exists(step.path() / "manifest.json")) continue;
    for (const auto& file : fs::directory_iterator(step.path()))
      files[file.path().lexically_relative(dir).string()] = read_file(file.path());
  }
  return files;
}

class RunFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("loom_fault_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // A data-parallel pair of Loom's small model, in fp32 so that losses repeat exactly.
    const LoomResult r = run_loom(
        "init --model loom-tiny --devices-per-node 2 --global-batch-size 8 "
        "--micro-batch-size 2 --dtype fp32 --train-iters 100 -o '" +
        path("plan.json") + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // `loom run` in the background, its standard output and error going to files.
  pid_t start_run(const std::string& flags, const std::string& out, const std::string& err) {
    const std::string command = std::string("exec '") + LOOM_BINARY + "' run '" +
                                path("plan.json") + "' " + flags + " >'" + out + "' 2>'" + err +
                                "'";
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
    return pid;
  }

  // The process ids of this test's ranks (their command lines name this test's plan).
  std::vector<pid_t> rank_pids() {
    std::vector<pid_t> pids;
    for (const auto& entry : fs::directory_iterator("/proc")) {
      const std::string name = entry.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string cmdline = read_file(entry.path() / "cmdline");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      if (cmdline.find("loom-exec run " + path("plan.json")) != std::string::npos &&
          cmdline.find("mpirun") == std::string::npos)
        pids.push_back(pid_t(std::stoi(name)));
    }
    return pids;
  }

  fs::path dir_;
};

TEST_F(RunFaults, AKilledRankFailsTheRunAndResumingReproducesTheUninterruptedLosses) {
  // The run as it should go: 40 steps, uninterrupted.
  const LoomResult reference =
      run_loom("run '" + path("plan.json") + "' --steps 40 --threads 1 --jsonl");
  ASSERT_EQ(reference.exit_code, 0) << reference.err;
  const std::map<int64_t, double> expected = losses_in(reference.out);
  ASSERT_EQ(expected.size(), 40u);

  // The same run with checkpoints every 4 steps; one rank is killed once step 6 is logged, long
  // before the run could end by itself.
  const std::string db = path("loom.db"), checkpoints = path("ckpt");
  const pid_t run = start_run("--steps 40 --threads 1 --jsonl --db '" + db +
                                  "' --checkpoint-dir '" + checkpoints + "' --checkpoint-every 4",
                              path("killed.out"), path("killed.err"));
  const auto deadline = Clock::now() + std::chrono::minutes(2);
  while (!losses_in(read_file(path("killed.out"))).contains(6) && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(losses_in(read_file(path("killed.out"))).contains(6))
      << read_file(path("killed.err"));
  const std::map<std::string, std::string> before = complete_checkpoints(checkpoints);
  ASSERT_TRUE(before.contains("step-000004/manifest.json"));
  const std::vector<pid_t> ranks = rank_pids();
  ASSERT_EQ(ranks.size(), 2u);
  ASSERT_EQ(kill(ranks.back(), SIGKILL), 0);
  const auto killed_at = Clock::now();

  int status = 0;
  while (waitpid(run, &status, WNOHANG) == 0 && Clock::now() - killed_at < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double seconds_to_exit = std::chrono::duration<double>(Clock::now() - killed_at).count();
  ASSERT_LT(seconds_to_exit, 30.0) << "loom run hangs after a rank was killed";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "loom run must fail";
  EXPECT_TRUE(rank_pids().empty()) << "a rank outlived the run";

  core::Store store = core::Store::open(db, core::Store::OpenMode::existing);
  const core::RunRow failed = store.run(store.list_runs().front().id);
  EXPECT_EQ(failed.status, core::RunStatus::failed);
  ASSERT_TRUE(failed.reason.has_value());
  EXPECT_FALSE(failed.reason->empty());
  // Checkpoints complete before the kill are as they were (a later one may have completed).
  const std::map<std::string, std::string> after = complete_checkpoints(checkpoints);
  for (const auto& [file, bytes] : before) {
    ASSERT_TRUE(after.contains(file)) << file << " disappeared";
    EXPECT_TRUE(after.at(file) == bytes) << file << " changed";
  }

  // Resumed from the newest complete checkpoint: the remaining steps' losses, bit for bit.
  const LoomResult resumed =
      run_loom("run '" + path("plan.json") + "' --steps 40 --threads 1 --jsonl --db '" + db +
               "' --checkpoint-dir '" + checkpoints + "' --checkpoint-every 4 --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const std::map<int64_t, double> continued = losses_in(resumed.out);
  ASSERT_FALSE(continued.empty());
  EXPECT_GE(continued.begin()->first, 5) << "resumed from step 4 or later";
  EXPECT_EQ(continued.rbegin()->first, 40);
  for (const auto& [step, loss] : continued) EXPECT_EQ(loss, expected.at(step)) << "step " << step;
}

TEST_F(RunFaults, ACheckpointThatCannotBeWrittenFailsTheRunAndKeepsTheEarlierOne) {
  const std::string db = path("loom.db"), checkpoints = path("ckpt");
  const LoomResult first =
      run_loom("run '" + path("plan.json") + "' --steps 4 --threads 1 --db '" + db +
               "' --checkpoint-dir '" + checkpoints + "' --checkpoint-every 4");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::map<std::string, std::string> earlier = complete_checkpoints(checkpoints);
  ASSERT_TRUE(earlier.contains("step-000004/manifest.json"));

  // The next checkpoint's step directory cannot be created (a file is in its way), as when the
  // file system refuses a write midway through a run. (A full disk: the next test.)
  std::ofstream(fs::path(checkpoints) / "step-000008") << "in the way";
  const LoomResult resumed =
      run_loom("run '" + path("plan.json") + "' --steps 8 --threads 1 --db '" + db +
               "' --checkpoint-dir '" + checkpoints + "' --checkpoint-every 4 --resume");
  EXPECT_NE(resumed.exit_code, 0) << resumed.err;
  EXPECT_FALSE(resumed.signalled) << resumed.err;
  EXPECT_THAT(resumed.err, HasSubstr("step-000008")) << "the error names what could not be written";

  core::Store store = core::Store::open(db, core::Store::OpenMode::existing);
  const std::vector<core::RunRow> runs = store.list_runs();
  ASSERT_EQ(runs.size(), 2u);
  const core::RunRow& failed = runs.front().id > runs.back().id ? runs.front() : runs.back();
  EXPECT_EQ(failed.status, core::RunStatus::failed);
  ASSERT_TRUE(failed.reason.has_value());
  EXPECT_THAT(*failed.reason, HasSubstr("step-000008"));
  const std::map<std::string, std::string> after = complete_checkpoints(checkpoints);
  EXPECT_TRUE(after == earlier)
      << "the earlier checkpoint is untouched and no incomplete one counts as complete";
  EXPECT_EQ(read_file(fs::path(checkpoints) / "step-000008"), "in the way");
}

// Bytes a tmpfs charges for these files: whole 4 KiB pages.
uintmax_t tmpfs_bytes(const std::map<std::string, std::string>& files) {
  uintmax_t bytes = 0;
  for (const auto& [name, contents] : files) bytes += (contents.size() + 4095) / 4096 * 4096;
  return bytes;
}

std::string quoted(const std::string& word) {
  return "'" + word + "'";
}

// A real full disk: the checkpoint directory is a small tmpfs mounted in a private user and mount
// namespace (no privileges needed where unprivileged user namespaces are allowed), holding the
// step-4 checkpoint with room for about half of another. The step-8 checkpoint then fails with
// ENOSPC partway through its tensors. Then the user makes room and resumes.
TEST_F(RunFaults, ADiskThatFillsUpFailsTheRunKeepsTheEarlierCheckpointAndResumesOnceThereIsRoom) {
  const fs::path probe = dir_ / "probe";
  fs::create_directories(probe);
  const std::string can_mount = "unshare --user --map-root-user --mount /bin/sh -c " +
                                quoted("mount -t tmpfs -o size=64k loom-probe " + probe.string()) +
                                " 2>/dev/null";
  if (std::system(can_mount.c_str()) != 0)
    GTEST_SKIP() << "this machine does not allow an unprivileged user namespace to mount a tmpfs";

  const std::string db = path("loom.db"), seed = path("seed");
  const LoomResult first = run_loom("run '" + path("plan.json") + "' --steps 4 --threads 1 --db '" +
                                    db + "' --checkpoint-dir '" + seed + "' --checkpoint-every 4");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::map<std::string, std::string> earlier = complete_checkpoints(seed);
  ASSERT_TRUE(earlier.contains("step-000004/manifest.json"));
  const uintmax_t step_bytes = tmpfs_bytes(earlier);
  const uintmax_t size_bytes = step_bytes + step_bytes / 2;

  // Inside the namespace: mount, copy the earlier checkpoint in, resume to step 8 and copy what
  // the disk holds out (the mount disappears with the namespace); then grow the file system, as
  // a user who has freed space would, and resume again.
  const std::string full = path("full"), after_dir = path("after"), freed_dir = path("freed");
  for (const std::string& d : {full, after_dir, freed_dir}) fs::create_directories(d);
  const std::string resume = quoted(LOOM_BINARY) + " run " + quoted(path("plan.json")) +
                             " --steps 8 --threads 1 --jsonl --db " + quoted(db) +
                             " --checkpoint-dir " + quoted(full) + " --checkpoint-every 4 --resume";
  const std::string script =
      "mount -t tmpfs -o size=" + std::to_string(size_bytes) + " loom-full " + quoted(full) +
      " || exit 99\n" + "cp -a " + quoted(seed + "/.") + " " + quoted(full) + " || exit 99\n" +
      resume + " >" + quoted(path("full.out")) + " 2>" + quoted(path("full.err")) + "\n" +
      "status=$?\n" + "cp -a " + quoted(full + "/.") + " " + quoted(after_dir) + " || exit 99\n" +
      "mount -o remount,size=" + std::to_string(4 * step_bytes) + " " + quoted(full) +
      " || exit 99\n" + resume + " >" + quoted(path("freed.out")) + " 2>" +
      quoted(path("freed.err")) + "\n" + "echo $? >" + quoted(path("freed.status")) + "\n" +
      "cp -a " + quoted(full + "/.") + " " + quoted(freed_dir) + " || exit 99\n" + "exit $status\n";
  std::ofstream(path("full.sh")) << script;
  const int status = std::system(
      ("unshare --user --map-root-user --mount /bin/sh " + quoted(path("full.sh"))).c_str());
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_NE(WEXITSTATUS(status), 99) << "the tmpfs could not be prepared";
  const std::string err = read_file(path("full.err"));
  EXPECT_NE(WEXITSTATUS(status), 0) << "loom run must fail on a full disk";
  EXPECT_LT(WEXITSTATUS(status), 128) << "loom run must not crash: " << err;
  EXPECT_THAT(err, HasSubstr("loom: error: "));
  EXPECT_THAT(err.substr(err.rfind("loom: error: ")), HasSubstr("No space left on device"))
      << "loom's own last line says why, whichever rank failed first";
  EXPECT_THAT(err, HasSubstr("step-000008")) << "the error names what could not be written";

  core::Store store = core::Store::open(db, core::Store::OpenMode::existing);
  std::vector<core::RunRow> runs = store.list_runs();
  ASSERT_EQ(runs.size(), 3u);
  std::sort(runs.begin(), runs.end(),
            [](const core::RunRow& a, const core::RunRow& b) { return a.id < b.id; });
  EXPECT_EQ(runs[1].status, core::RunStatus::failed);
  ASSERT_TRUE(runs[1].reason.has_value());
  EXPECT_THAT(*runs[1].reason, HasSubstr("No space left on device"));

  // After the failure: the step-4 checkpoint is byte for byte what it was, and step 8 does not
  // count as complete.
  EXPECT_TRUE(complete_checkpoints(after_dir) == earlier);
  EXPECT_FALSE(fs::exists(fs::path(after_dir) / "step-000008" / "manifest.json"));

  // With room again: the resumed run completes step 8, its steps 5 to 7 repeat the failed run's
  // losses bit for bit, and no temporary of the failed attempt is left anywhere.
  EXPECT_EQ(read_file(path("freed.status")), "0\n") << read_file(path("freed.err"));
  EXPECT_EQ(runs[2].status, core::RunStatus::completed);
  const std::map<int64_t, double> failed_losses = losses_in(read_file(path("full.out")));
  const std::map<int64_t, double> freed_losses = losses_in(read_file(path("freed.out")));
  ASSERT_TRUE(failed_losses.contains(7)) << "the failed run trained up to its checkpoint";
  ASSERT_TRUE(freed_losses.contains(8));
  for (const auto& [step, loss] : failed_losses)
    EXPECT_EQ(freed_losses.at(step), loss) << "step " << step;
  const std::map<std::string, std::string> freed = complete_checkpoints(freed_dir);
  EXPECT_TRUE(freed.contains("step-000008/manifest.json"));
  for (const auto& entry : fs::recursive_directory_iterator(freed_dir))
    EXPECT_FALSE(entry.path().filename().string().find(".tmp-") != std::string::npos)
        << entry.path() << " was left";
}

}  // namespace
}  // namespace loom::cli::testing
