// Every command that reads a user's JSON file refuses a bad one in one line and exits 2, in
// bounded time: a directory, a FIFO (which must not block), a character device, a file over the
// size limit (sparse: no disk), a document nested 100,000 deep (which overflowed the stack) and
// a 5 MB array in an integer field (which made a 5 MB error line). Each command gets each input
// as the kind of document it reads: a plan, a model or a profile.

#include "core/input_file.hpp"   // kMaxJsonInputBytes
#include "core/json_reader.hpp"  // core::Json, to build the documents
#include "run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>  // mkfifo
#include <sys/wait.h>  // WIFSIGNALED, WEXITSTATUS
#include <unistd.h>    // getpid, truncate

#include <algorithm>   // std::count
#include <cstdlib>     // std::system
#include <filesystem>  // temporary directory
#include <fstream>     // writing the documents
#include <string>      // commands, messages
#include <vector>      // the table of commands

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

enum class DocumentKind { plan, model, profile };

struct Command {
  std::string name;      // for the test's name
  std::string arguments;  // {} is replaced by the file
  DocumentKind reads;
};

struct BadInput {
  std::string name;
  std::string expected;  // what the refusal must say
};

std::string substitute(std::string text, const std::string& value) {
  const size_t at = text.find("{}");
  return text.replace(at, 2, value);
}

class InputFiles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("loom_input_files_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "a-directory");
    ASSERT_EQ(::mkfifo((dir_ / "a-fifo").c_str(), 0600), 0);
    // Sparse: one byte over the limit costs no disk.
    std::ofstream(dir_ / "over-limit.json").put(' ');
    ASSERT_EQ(::truncate((dir_ / "over-limit.json").c_str(), off_t(core::kMaxJsonInputBytes) + 1), 0);
    std::ofstream(dir_ / "deep.json") << std::string(100000, '[') << std::string(100000, ']');

    // A 5 MB array where each kind of document wants an integer.
    const core::Json huge_array(std::vector<int>(2'500'000, 0));
    const std::string plan_text = read_file(fixture_path("../fuzz/seeds/plan_json/gpt2-124m-tp2-pp2.json"));
    ASSERT_FALSE(plan_text.empty());
    core::Json plan = core::parse_json_text(plan_text, "plan");
    core::Json model = plan["model"];
    plan["model"]["hidden-size"] = huge_array;
    model["hidden-size"] = huge_array;
    core::Json profile = core::parse_json_text(
        read_file(fs::path(LOOM_FIXTURES_DIR).parent_path().parent_path() / "profiles" / "a100-80gb-dgx.json"),
        "profile");
    profile["device"]["memory_bytes"] = huge_array;
    std::ofstream(dir_ / "huge-array-plan.json") << plan.dump();
    std::ofstream(dir_ / "huge-array-model.json") << model.dump();
    std::ofstream(dir_ / "huge-array-profile.json") << profile.dump();
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static fs::path dir_;
};
fs::path InputFiles::dir_;

const std::vector<Command>& commands_reading_json() {
  static const std::vector<Command> commands = {
      {"show", "show {}", DocumentKind::plan},
      {"simulate", "simulate {}", DocumentKind::plan},
      {"export megatron", "export megatron {}", DocumentKind::plan},
      {"run --dry-run", "run {} --dry-run", DocumentKind::plan},
      {"simulate --profile", "simulate --profile {}", DocumentKind::profile},
      {"plan --profile", "plan --profile {}", DocumentKind::profile},
      {"plan --model", "plan --model {}", DocumentKind::model},
      {"init --model", "init --model {}", DocumentKind::model},
  };
  return commands;
}

// Runs `command` on `file` and checks the refusal: one line of at most max_line_bytes.
void expect_refused(const Command& command, const std::string& file, const std::string& expected,
                    size_t max_line_bytes = 1000) {
  const std::string arguments = substitute(command.arguments, "'" + file + "'");
  SCOPED_TRACE("loom " + arguments);
  const LoomResult result = run_loom_within(20, arguments);
  ASSERT_FALSE(result.signalled) << "crashed: " << result.err;
  ASSERT_NE(result.exit_code, 124) << "did not finish within 20 s";
  EXPECT_EQ(result.exit_code, 2) << result.err.substr(0, 500);
  EXPECT_EQ(result.err.rfind("loom: error: ", 0), 0u) << result.err.substr(0, 500);
  EXPECT_THAT(result.err.substr(0, 2000), HasSubstr(expected));
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << "one line only";
  EXPECT_LT(result.err.size(), max_line_bytes) << result.err.substr(0, 500);
  EXPECT_TRUE(result.out.empty()) << result.out.substr(0, 500);
}

TEST_F(InputFiles, EveryReaderRefusesWhatIsNotARegularFile) {
  const std::vector<BadInput> inputs = {
      {(dir_ / "a-directory").string(), "it is a directory, not a regular file"},
      {(dir_ / "a-fifo").string(), "it is a FIFO (named pipe), not a regular file"},
      {"/dev/null", "it is a character device, not a regular file"},  // only ever read
  };
  for (const Command& command : commands_reading_json())
    for (const BadInput& input : inputs) expect_refused(command, input.name, input.expected);
}

// Where a name may also be a preset, a missing file is an unknown name.
TEST_F(InputFiles, AMissingFileIsNamed) {
  for (const Command& command : commands_reading_json()) {
    const char* expected = command.reads == DocumentKind::plan    ? "cannot read '{}': no such file"
                           : command.reads == DocumentKind::model ? "unknown model preset '{}'"
                                                                  : "unknown profile '{}'";
    const std::string missing = (dir_ / "not-there.json").string();
    expect_refused(command, missing, substitute(expected, missing));
  }
}

TEST_F(InputFiles, EveryReaderRefusesAFileOverTheLimitBeforeReadingIt) {
  for (const Command& command : commands_reading_json())
    expect_refused(command, (dir_ / "over-limit.json").string(), "it is 64.0 MiB (67108865 bytes); JSON inputs are limited to 64 MiB");
}

TEST_F(InputFiles, EveryReaderRefusesDeepNestingWithoutCrashing) {
  for (const Command& command : commands_reading_json())
    expect_refused(command, (dir_ / "deep.json").string(), "JSON nested deeper than 64 levels at line 1, column 65");
}

TEST_F(InputFiles, AHugeValueIsQuotedShort) {
  for (const Command& command : commands_reading_json()) {
    const char* file = command.reads == DocumentKind::plan    ? "huge-array-plan.json"
                       : command.reads == DocumentKind::model ? "huge-array-model.json"
                                                              : "huge-array-profile.json";
    expect_refused(command, (dir_ / file).string(), "expected an integer, got an array of 2500000 elements ([0,0,0,",
                   300);
  }
}

// Standard input has no size before its end when it is a pipe: it is read one byte past the
// limit, then refused; a redirected file is measured first, as a named one.
TEST_F(InputFiles, StandardInputIsLimitedToo) {
  for (const std::string& feed : {std::string("head -c 70000000 /dev/zero | "), std::string("")}) {
    const std::string redirect = feed.empty() ? " <'" + (dir_ / "over-limit.json").string() + "'" : "";
    const std::string command = feed + "timeout -k 5 20 '" + LOOM_BINARY + "' show -" + redirect + " >'" +
                                (dir_ / "out").string() + "' 2>'" + (dir_ / "err").string() + "'";
    SCOPED_TRACE(command);
    const int status = std::system(command.c_str());
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 2);
    const std::string err = read_file(dir_ / "err");
    EXPECT_THAT(err, HasSubstr("cannot read standard input: it is "));
    EXPECT_THAT(err, HasSubstr("JSON inputs are limited to 64 MiB"));
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
}

}  // namespace
}  // namespace loom::cli::testing
