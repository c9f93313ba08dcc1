// `loom import megatron|llmc`: sample logs stored as runs that `loom runs` and `loom compare` show
// like Loom's own, and bad logs refused with one line naming the file (and line), exit 2.

#include "tests/cli/run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace loom::cli::testing {
namespace {

using ::testing::HasSubstr;

class ImportCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("loom_import_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = (dir_ / "loom.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    const auto path = dir_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }

  // One line on stderr, "loom: error: …", exit 2, and no store left behind.
  void expect_refused(const std::string& arguments, const std::string& message) {
    const LoomResult r = run_loom(arguments + " --db " + db_);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr(message));
    EXPECT_EQ(r.err.rfind("loom: error: ", 0), 0u) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    EXPECT_FALSE(std::filesystem::exists(db_)) << arguments;
  }

  std::filesystem::path dir_;
  std::string db_;
};

std::string logs(const std::string& name) { return fixture_path("logs/" + name); }

TEST_F(ImportCliTest, MegatronLogBecomesARunThatCompareAndRunsShow) {
  const LoomResult imported = run_loom("import megatron " + logs("megatron_core_0_9.log") + " --db " + db_);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_THAT(imported.out, HasSubstr("megatron (megatron-core)"));
  EXPECT_THAT(imported.out, HasSubstr("5 (iterations 10 to 50 of 50)"));
  EXPECT_THAT(imported.out, HasSubstr("104.9 ms"));
  EXPECT_THAT(imported.out, HasSubstr("Next: loom compare 1 --db " + db_));

  const LoomResult compare = run_loom("compare 1 --db " + db_);
  ASSERT_EQ(compare.exit_code, 0) << compare.err;
  EXPECT_THAT(compare.out, HasSubstr("not measured")) << "Megatron times no tensor-parallel communication";
  EXPECT_THAT(compare.out, ::testing::ContainsRegex("forward +[0-9.]+ ms +31\\.70 ms"));

  const LoomResult runs = run_loom("runs --db " + db_);
  ASSERT_EQ(runs.exit_code, 0) << runs.err;
  EXPECT_THAT(runs.out, HasSubstr("source"));
  EXPECT_THAT(runs.out, HasSubstr("megatron"));

  const LoomResult json = run_loom("import llmc " + logs("llmc_gpt2_cu.log") + " --plan " +
                                   logs("llmc_gpt2_124m_plan.json") + " --db " + db_ + " --format json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"run\": 2"));
  EXPECT_THAT(json.out, HasSubstr("\"steady_step_time_s\""));
  EXPECT_THAT(json.out, HasSubstr("\"steps_without_loss\": 1"));
  const LoomResult llmc_compare = run_loom("compare 2 --db " + db_);
  ASSERT_EQ(llmc_compare.exit_code, 0) << llmc_compare.err;
  EXPECT_THAT(llmc_compare.out, HasSubstr("The llmc log reports no per-rank time or memory"));
}

TEST_F(ImportCliTest, TruncatedLogIsAFailedRun) {
  const LoomResult r = run_loom("import megatron " + logs("megatron_truncated.log") + " --db " + db_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("failed: the log ends at iteration 30 of 50"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("ignored lines +1"));
}

TEST_F(ImportCliTest, BadLogsAreRefusedWithOneLine) {
  expect_refused("import megatron " + logs("megatron_garbled.log"),
                 "megatron_garbled.log:101: expected a number after 'elapsed time per iteration (ms):', found '1O4.9'");
  expect_refused("import megatron " + dir_.string(), "not a regular file");
  expect_refused("import megatron /dev/null", "not a regular file");
  expect_refused("import megatron " + write("empty.log", ""), "empty.log: the log is empty");
  expect_refused("import megatron " + write("garbage.log", std::string("\x7f" "ELF\x02\x01\x01\0\0\0", 10)),
                 "garbage.log:1: binary data");
  expect_refused("import megatron " + logs("megatron_core_0_9.log") + " --plan " + logs("other_model_plan.json"),
                 "world_size is 16 in the plan but 8 in the log's arguments");
  expect_refused("import megatron " + logs("megatron_lm_v1.log"), "the log has no arguments block");
  expect_refused("import llmc " + logs("llmc_gpt2_cu.log"), "--plan is required");
  expect_refused("import llmc " + logs("megatron_core_0_9.log") + " --plan " + logs("llmc_gpt2_124m_plan.json"),
                 "no llm.c step lines");
  expect_refused("import megatron " + logs("megatron_core_0_9.log") + " --profile no-such-gpu", "no-such-gpu");
}

}  // namespace
}  // namespace loom::cli::testing
