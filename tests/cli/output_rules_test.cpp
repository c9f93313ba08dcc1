// The rules every command that writes follows (core/output_file.hpp), checked on every such
// command of `loom`, table by table: a target that is not a regular file (a FIFO, a device node,
// a directory, a link to one) is refused and left as it was; an output that is one of the
// command's inputs is refused; a full disk fails the command and leaves nothing behind; and a
// failed write to standard output fails the command. Special files are made here, in a temporary
// directory: the system's own are never written to.

#include "../loom_tiny_plan.hpp"
#include "core/plan_json.hpp"
#include "core/store.hpp"
#include "core/store_rows.hpp"
#include "run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string replaced(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values)
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
      text.replace(at, key.size(), value);
  return text;
}

std::string shell_quoted(const std::string& word) { return "'" + word + "'"; }

class OutputRules : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("loom_output_rules_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "ck" / "step-000060");
    std::ofstream(dir_ / "ck" / "step-000060" / "rank-00000.safetensors") << "a shard of the user's";
    std::ofstream(dir_ / "plan.json") << core::to_json(loom::testing::loom_tiny_two_stage_plan()).dump(2);
    fs::copy_file(fixture_path("../fuzz/seeds/model_json/gpt2.json"), dir_ / "model.json");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Every file under the directory with its contents, special files by their kind.
  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> files;
    for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
      const std::string name = fs::relative(entry.path(), dir_).string();
      if (entry.is_symlink()) files[name] = "-> " + fs::read_symlink(entry.path()).string();
      else if (entry.is_regular_file()) files[name] = read_file(entry.path());
      else if (entry.is_directory()) files[name] = "(directory)";
      else if (entry.is_fifo()) files[name] = "(fifo)";
      else if (entry.is_character_file()) files[name] = "(character device)";
      else files[name] = "(other)";
    }
    return files;
  }

  // The command lines that write {target}, with {dir} the test's directory.
  std::vector<std::string> writing_commands() const {
    return {
        "init --model loom-tiny --devices-per-node 1 -o {target}",
        "plan --model loom-tiny --devices 1 --devices-per-node 1 --global-batch-size 8 --out {target}",
        "simulate {dir}/plan.json --trace {target}",
        "checkpoint export {dir}/ck --out {target}",
        "profile --quick --dry-run --out {target}",
        "run {dir}/plan.json --dry-run --save-model {target}",
        // Stores: created or opened only where they are a Loom store in a regular file.
        "plan --model loom-tiny --devices 1 --devices-per-node 1 --global-batch-size 8 --db {target}",
        "runs --db {target}",
        "compare 1 --db {target}",
    };
  }

  void expect_refused(const std::string& command, const std::string& expected) {
    const std::map<std::string, std::string> before = snapshot();
    const LoomResult result = run_loom(command);
    EXPECT_FALSE(result.signalled) << command << "\n" << result.err;
    EXPECT_EQ(result.exit_code, 2) << command << "\n" << result.err;
    EXPECT_THAT(result.err, StartsWith("loom: error: ")) << command;
    EXPECT_THAT(result.err, HasSubstr(expected)) << command;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << command << "\none line only:\n" << result.err;
    EXPECT_EQ(snapshot(), before) << command << ": nothing may change, nothing may be left behind";
  }

  fs::path dir_;
};

TEST_F(OutputRules, AFifoIsNeverWrittenToOrReplaced) {
  ASSERT_EQ(mkfifo(path("fifo").c_str(), 0644), 0);
  for (const std::string& command : writing_commands())
    expect_refused(replaced(command, {{"{target}", path("fifo")}, {"{dir}", dir_.string()}}), "not a regular file");
  EXPECT_TRUE(fs::is_fifo(path("fifo")));
}

TEST_F(OutputRules, ADeviceNodeIsNeverWrittenToOrReplaced) {
  // A node of our own, in our directory (the null device's numbers): never the system's.
  if (mknod(path("device").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0)
    GTEST_SKIP() << "this user cannot make a device node (mknod: " << std::strerror(errno) << ")";
  for (const std::string& command : writing_commands())
    expect_refused(replaced(command, {{"{target}", path("device")}, {"{dir}", dir_.string()}}), "not a regular file");
  EXPECT_TRUE(fs::is_character_file(path("device")));
  // Through a symbolic link too: the link is followed, and what it names is checked.
  fs::create_symlink(path("device"), path("link-to-device"));
  for (const std::string& command : writing_commands())
    expect_refused(replaced(command, {{"{target}", path("link-to-device")}, {"{dir}", dir_.string()}}),
                   "not a regular file");
  EXPECT_TRUE(fs::is_symlink(path("link-to-device")));
}

TEST_F(OutputRules, ADirectoryIsNotAFile) {
  fs::create_directories(path("a-directory"));
  for (const std::string& command : writing_commands())
    expect_refused(replaced(command, {{"{target}", path("a-directory")}, {"{dir}", dir_.string()}}), "directory");
}

TEST_F(OutputRules, AMissingDirectoryIsNamed) {
  for (const std::string& command : writing_commands()) {
    if (command.find("--db") != std::string::npos) continue;  // stores: "no store at" / created by SQLite
    expect_refused(replaced(command, {{"{target}", path("no-such-dir/out.json")}, {"{dir}", dir_.string()}}),
                   "does not exist");
  }
}

// An output that is one of the command's own inputs, by path, through a hard link, or inside a
// directory it reads, is refused before anything is written.
TEST_F(OutputRules, AnOutputThatIsAnInputIsRefused) {
  fs::create_hard_link(path("plan.json"), path("plan-link.json"));
  const std::map<std::string, std::string> values = {{"{dir}", dir_.string()}};
  const std::vector<std::string> commands = {
      "init --model {dir}/model.json --devices-per-node 1 -o {dir}/model.json",
      "plan --model loom-tiny --devices 1 --devices-per-node 1 --global-batch-size 8 --out {dir}/new.db --db {dir}/new.db",
      "plan --model {dir}/model.json --devices 8 --global-batch-size 8 --out {dir}/model.json",
      "simulate {dir}/plan.json --trace {dir}/plan.json",
      "simulate {dir}/plan.json --trace {dir}/plan-link.json",
      "simulate {dir}/plan.json --trace {dir}/../" + dir_.filename().string() + "/plan.json",
      "checkpoint export {dir}/ck --out {dir}/ck/step-000060/rank-00000.safetensors",
      "checkpoint export {dir}/ck --out {dir}/ck/model.safetensors",
      "run {dir}/plan.json --dry-run --save-model {dir}/plan-link.json",
      "run {dir}/plan.json --dry-run --data {dir}/model.json --save-model {dir}/model.json",
  };
  for (const std::string& command : commands) expect_refused(replaced(command, values), "input");
}

// `loom plan --out X --db X` once turned the store into plan JSON.
TEST_F(OutputRules, AStoreIsNeverOverwrittenByAnOutput) {
  const std::string db = path("loom.db");
  const std::string search = "plan --model loom-tiny --devices 1 --devices-per-node 1 --global-batch-size 8 ";
  ASSERT_EQ(run_loom(search + "--db " + db).exit_code, 0);
  const std::string before = read_file(db);
  expect_refused(search + "--db " + db + " --out " + db, "input");
  EXPECT_EQ(read_file(db), before);
  EXPECT_EQ(run_loom("runs --db " + db).exit_code, 0) << "still a store";
}

// A store is touched only once recognised: a foreign SQLite file keeps its journal mode, and an
// empty file stays empty.
TEST_F(OutputRules, AFileThatIsNotALoomStoreIsLeftAsItWas) {
  std::ofstream(path("empty.db")).flush();
  expect_refused("runs --db " + path("empty.db"), "empty file");
  expect_refused("plan --model loom-tiny --devices 1 --devices-per-node 1 --global-batch-size 8 --db " +
                     path("empty.db"),
                 "empty file");
  EXPECT_EQ(fs::file_size(path("empty.db")), 0u);
  if (std::system(("sqlite3 " + shell_quoted(path("other.db")) + " 'CREATE TABLE t(x); INSERT INTO t VALUES (1);'")
                      .c_str()) != 0)
    GTEST_SKIP() << "no sqlite3 command to make a foreign database";
  const std::string before = read_file(path("other.db"));
  expect_refused("runs --db " + path("other.db"), "not a Loom store");
  EXPECT_EQ(read_file(path("other.db")), before) << "not even its journal mode may change";
  EXPECT_FALSE(fs::exists(path("other.db-wal")));
}

// Targets that are regular files are replaced whole, keeping the file's permissions.
TEST_F(OutputRules, ARegularFileIsReplacedWhole) {
  std::ofstream(path("best.json")) << "an older plan";
  fs::permissions(path("best.json"), fs::perms::owner_read | fs::perms::owner_write);
  const LoomResult result = run_loom("init --model loom-tiny --devices-per-node 1 -o " + path("best.json"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(read_file(path("best.json")), HasSubstr("\"loom-plan\""));
  EXPECT_EQ(fs::status(path("best.json")).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  for (const auto& entry : fs::directory_iterator(dir_))
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << "a temporary was left";
}

// '-' is standard output, written to because the user asked for it plainly: alone there.
TEST_F(OutputRules, ADashIsStandardOutputAlone) {
  const LoomResult plan = run_loom(
      "plan --model loom-tiny --devices 1 --devices-per-node 1 --global-batch-size 8 --out -");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_EQ(run_loom("show -", plan.out).exit_code, 0) << "the best plan, and nothing else:\n" << plan.out;
  const LoomResult trace = run_loom("simulate " + path("plan.json") + " --trace -");
  ASSERT_EQ(trace.exit_code, 0) << trace.err;
  EXPECT_THAT(trace.out, StartsWith("{\"traceEvents\""));
  EXPECT_FALSE(fs::exists("-")) << "no file named '-' in the working directory";
}

// A real full disk: a small tmpfs in a private user and mount namespace (no privileges needed
// where such namespaces are allowed). Each command fails with the system's reason and leaves
// neither a partial file nor a temporary.
TEST_F(OutputRules, AFullDiskFailsTheCommandAndLeavesNothing) {
  const fs::path full = dir_ / "full";
  fs::create_directories(full);
  const std::string probe = "unshare --user --map-root-user --mount /bin/sh -c " +
                            shell_quoted("mount -t tmpfs -o size=64k loom-probe " + full.string()) + " 2>/dev/null";
  if (std::system(probe.c_str()) != 0)
    GTEST_SKIP() << "this machine does not allow an unprivileged user namespace to mount a tmpfs";
  const std::string loom = shell_quoted(LOOM_BINARY);
  const std::vector<std::string> commands = {
      loom + " init --model gpt2-124m -o " + full.string() + "/init.json",
      loom + " plan --model loom-tiny --devices 1 --devices-per-node 1 --global-batch-size 8 --out " + full.string() +
          "/best.json",
      loom + " simulate " + path("plan.json") + " --trace " + full.string() + "/trace.json",
  };
  // Inside the namespace: a tmpfs of 8 KiB, filled up; each command's status and message are
  // kept, then what the file system holds is listed (it disappears with the namespace).
  std::string script = "mount -t tmpfs -o size=8k loom-full " + shell_quoted(full.string()) + " || exit 99\n" +
                       "head -c 8192 /dev/zero > " + shell_quoted(full.string() + "/filler") + " 2>/dev/null\n";
  for (size_t i = 0; i < commands.size(); ++i)
    script += commands[i] + " >/dev/null 2>" + shell_quoted(path("err-" + std::to_string(i))) + "; echo $? >" +
              shell_quoted(path("status-" + std::to_string(i))) + "\n";
  script += "ls -A " + shell_quoted(full.string()) + " >" + shell_quoted(path("listing")) + "\n";
  std::ofstream(path("full.sh")) << script;
  const int status = std::system(("unshare --user --map-root-user --mount /bin/sh " + path("full.sh")).c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 99) << "the tmpfs could not be prepared";
  for (size_t i = 0; i < commands.size(); ++i) {
    const std::string err = read_file(path("err-" + std::to_string(i)));
    EXPECT_EQ(read_file(path("status-" + std::to_string(i))), "1\n") << commands[i] << "\n" << err;
    EXPECT_THAT(err, HasSubstr("No space left on device")) << commands[i];
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << commands[i] << "\n" << err;
  }
  EXPECT_EQ(read_file(path("listing")), "filler\n") << "no partial file, no temporary";
}

// `loom … > /dev/full` once exited 0: every command checks what it printed.
TEST_F(OutputRules, AFailedWriteToStandardOutputFailsEveryCommand) {
  if (!fs::is_character_file("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  const std::string db = path("store.db");
  {
    core::Store store = core::Store::open(db);
    core::RunRow run;
    run.plan_id = store.insert_plan(core::plan_row(loom::testing::loom_tiny_two_stage_plan(), "two stages"));
    run.backend = "cpu";
    run.profile_name = "cpu-epyc-2core-vm";
    const int64_t id = store.begin_run(run);
    store.append_steps(id, {{1, 5.0, 0.1, 1000, 1e-4, 1.0}, {2, 4.0, 0.1, 1000, 1e-4, 1.0}});
  }
  const std::vector<std::string> commands = {
      "--help",
      "--version",
      "presets --models",
      "show",
      "show " + path("plan.json") + " --format json",
      "init --model loom-tiny",
      "simulate " + path("plan.json"),
      "simulate --format json",
      "export megatron " + path("plan.json"),
      "validate megatron-ptdp",
      "plan --model loom-tiny --devices 1 --devices-per-node 1 --global-batch-size 8",
      "plan --model loom-tiny --devices 1 --devices-per-node 1 --global-batch-size 8 --format csv",
      "runs --db " + db,
      "compare 1 --db " + db,
  };
  for (const std::string& command : commands) {
    const std::string err_path = path("err");
    const int status =
        std::system((shell_quoted(LOOM_BINARY) + " " + command + " >/dev/full 2>" + shell_quoted(err_path)).c_str());
    ASSERT_TRUE(WIFEXITED(status)) << command;
    const std::string err = read_file(err_path);
    EXPECT_EQ(WEXITSTATUS(status), 1) << command << "\n" << err;
    EXPECT_THAT(err, HasSubstr("cannot write to standard output: No space left on device")) << command;
  }
}

}  // namespace
}  // namespace loom::cli::testing
