// core::OutputFile, the one writer of every file Loom writes: what it refuses, what it leaves
// behind when it fails (nothing), and what it replaces (only a regular file, whole).

#include "core/error.hpp"
#include "core/output_file.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace loom::core {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("loom_output_file_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path path(const std::string& name) const { return dir_ / name; }
  static std::string contents(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  std::vector<std::string> names() const {
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(dir_)) found.push_back(entry.path().filename().string());
    std::sort(found.begin(), found.end());
    return found;
  }
  template <typename F>
  static std::string refusal(F write) {
    try {
      write();
    } catch (const InvalidInput& e) {
      return e.what();
    }
    return "(not refused)";
  }
  fs::path dir_;
};

TEST_F(OutputFileTest, WritesWholeThroughATemporaryAndKeepsTheModeOfTheFileItReplaces) {
  std::ofstream(path("plan.json")) << "old";
  fs::permissions(path("plan.json"), fs::perms::owner_read | fs::perms::owner_write);
  {
    OutputFile file(path("plan.json"));
    file.write("new ");
    EXPECT_EQ(contents(path("plan.json")), "old") << "the target is untouched until published";
    EXPECT_TRUE(fs::exists(file.temporary_path()));
    EXPECT_TRUE(is_temporary_file_name(file.temporary_path().filename().string()));
    file.write("contents");
    file.publish();
  }
  EXPECT_EQ(contents(path("plan.json")), "new contents");
  EXPECT_EQ(fs::status(path("plan.json")).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(names(), std::vector<std::string>{"plan.json"});
}

TEST_F(OutputFileTest, AFailureMidwayLeavesTheOldFileAndNoTemporary) {
  std::ofstream(path("plan.json")) << "old";
  try {
    OutputFile file(path("plan.json"));
    file.write("half of it");
    throw std::runtime_error("the writer failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(contents(path("plan.json")), "old");
  EXPECT_EQ(names(), std::vector<std::string>{"plan.json"});
}

TEST_F(OutputFileTest, SpecialFilesAreRefusedAndLeftAsTheyAre) {
  ASSERT_EQ(mkfifo(path("fifo").c_str(), 0644), 0);
  fs::create_directories(path("directory"));
  fs::create_symlink(path("fifo"), path("link-to-fifo"));
  EXPECT_THAT(refusal([&] { write_output_file(path("fifo"), "x"); }), HasSubstr("it is a FIFO (named pipe), not a regular file"));
  EXPECT_THAT(refusal([&] { write_output_file(path("link-to-fifo"), "x"); }), HasSubstr("a FIFO"));
  EXPECT_THAT(refusal([&] { write_output_file(path("directory"), "x"); }), HasSubstr("it is a directory"));
  EXPECT_THAT(refusal([&] { write_output_file(path("none/x.json"), "x"); }), HasSubstr("none' does not exist"));
  EXPECT_THAT(refusal([&] { write_output_file("", "x"); }), HasSubstr("empty"));
  EXPECT_TRUE(fs::is_fifo(path("fifo")));
  EXPECT_TRUE(fs::is_symlink(path("link-to-fifo")));
  EXPECT_EQ(names(), (std::vector<std::string>{"directory", "fifo", "link-to-fifo"}));
}

TEST_F(OutputFileTest, AnInputIsNeverAnOutput) {
  std::ofstream(path("plan.json")) << "the plan";
  fs::create_hard_link(path("plan.json"), path("hard-link.json"));
  fs::create_directories(path("ckpt/step-000010"));
  std::ofstream(path("ckpt/step-000010/rank-00000.safetensors")) << "a shard";
  const std::vector<fs::path> inputs = {path("plan.json"), path("ckpt"), path("new.db"), ""};
  for (const fs::path& target : {path("plan.json"), path("hard-link.json"), dir_ / "." / "plan.json", path("new.db")})
    EXPECT_THAT(refusal([&] { write_output_file(target, "x", inputs); }), HasSubstr("an input of this command"))
        << target;
  EXPECT_THAT(refusal([&] { write_output_file(path("ckpt/step-000010/rank-00000.safetensors"), "x", inputs); }),
              HasSubstr("inside"));
  EXPECT_THAT(refusal([&] { write_output_file(path("ckpt/model.safetensors"), "x", inputs); }), HasSubstr("inside"));
  EXPECT_EQ(contents(path("plan.json")), "the plan");
  EXPECT_EQ(contents(path("ckpt/step-000010/rank-00000.safetensors")), "a shard");
  EXPECT_FALSE(fs::exists(path("new.db")));
  write_output_file(path("other.json"), "fine", inputs);
  EXPECT_EQ(contents(path("other.json")), "fine");
}

TEST_F(OutputFileTest, ATargetThroughASymbolicLinkReplacesWhatItNamesAndKeepsTheLink) {
  std::ofstream(path("real.json")) << "old";
  fs::create_symlink(path("real.json"), path("link.json"));
  write_output_file(path("link.json"), "new");
  EXPECT_TRUE(fs::is_symlink(path("link.json")));
  EXPECT_EQ(contents(path("real.json")), "new");
}

TEST_F(OutputFileTest, StaleTemporariesOfOneTargetAreRemovedAndNoOthers) {
  std::ofstream(path("shard.safetensors.tmp-4242-0")) << "a dead writer's";
  std::ofstream(path("other.safetensors.tmp-4243-0")) << "another file's";
  remove_stale_temporaries(path("shard.safetensors"));
  EXPECT_EQ(names(), std::vector<std::string>{"other.safetensors.tmp-4243-0"});
}

// A write stopped by Ctrl-C or SIGTERM midway (an export of gigabytes) leaves no temporary: the
// signal still ends the process as it would have.
TEST_F(OutputFileTest, ASignalMidwayLeavesNoTemporary) {
  for (const int signal : {SIGINT, SIGTERM}) {
    std::ofstream(path("model.safetensors")) << "old";
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      OutputFile file(path("model.safetensors"));
      file.write("half of a model");
      raise(signal);
      _exit(0);  // not reached
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the signal must still end the process";
    EXPECT_EQ(WTERMSIG(status), signal);
    EXPECT_EQ(names(), std::vector<std::string>{"model.safetensors"}) << "signal " << signal;
    EXPECT_EQ(contents(path("model.safetensors")), "old");
  }
}

}  // namespace
}  // namespace loom::core
