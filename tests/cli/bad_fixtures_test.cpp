// Every file in tests/fixtures/bad/ is a plan that `loom show` must refuse: exit status 2, one
// line "loom: error: …" that contains the text of the paired .expected file, and no crash.
// Adding a case is adding two files.

#include "../fixture_cases.hpp"
#include "run_loom.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> bad_fixture_names() { return loom::testing::fixture_case_names(fixture_path("bad")); }

class BadFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(BadFixture, IsRefusedWithItsMessage) {
  const std::string name = GetParam();
  const std::string expected = loom::testing::fixture_expected_text(fixture_path("bad"), name);
  ASSERT_FALSE(expected.empty()) << name << ".expected is empty";
  fs::path input = fixture_path("bad/" + name + ".json");
  if (!fs::exists(input)) input = fixture_path("bad/" + name + ".txt");
  ASSERT_TRUE(fs::exists(input)) << "no input file for " << name;
  const LoomResult result = run_loom("show '" + input.string() + "'");
  ASSERT_FALSE(result.signalled) << "loom crashed on " << name << ": " << result.err;
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(result.err.rfind("loom: error: ", 0), 0u) << result.err;
  EXPECT_NE(result.err.find(expected), std::string::npos) << "expected: " << expected << "\ngot: " << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << "one line only: " << result.err;
  EXPECT_TRUE(result.out.empty()) << result.out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BadFixture, ::testing::ValuesIn(bad_fixture_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
                           return name;
                         });

TEST(BadFixtures, AtLeastThirtyCases) { EXPECT_GE(bad_fixture_names().size(), 30u); }

// tests/fixtures/bad_cli/: NAME.args is a `loom` command line ({tmp}: a fresh empty directory,
// {plan}: a valid plan, {fixtures}: tests/fixtures), NAME.expected what its one-line refusal
// says. Besides the refusal, nothing may be written: {tmp} stays empty (no store, no plan, no
// checkpoint directory, no trace).
std::vector<std::string> bad_cli_names() { return loom::testing::fixture_case_names(fixture_path("bad_cli")); }

std::string substituted(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values)
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
      text.replace(at, key.size(), value);
  return text;
}

class BadCommandLine : public ::testing::TestWithParam<std::string> {};

TEST_P(BadCommandLine, IsRefusedWithItsMessageAndWritesNothing) {
  const std::string name = GetParam();
  const fs::path tmp = fs::temp_directory_path() / ("loom_bad_cli_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::map<std::string, std::string> values = {
      {"{tmp}", tmp.string()},
      {"{plan}", fixture_path("../fuzz/seeds/plan_json/gpt2-124m-tp2-pp2.json")},
      {"{fixtures}", fixture_path("")}};
  std::ifstream args_file(fixture_path("bad_cli/" + name + ".args"));
  std::string args;
  std::getline(args_file, args);
  ASSERT_FALSE(args.empty()) << name << ".args is empty";
  const std::string expected =
      substituted(loom::testing::fixture_expected_text(fixture_path("bad_cli"), name), values);
  ASSERT_FALSE(expected.empty()) << name << ".expected is empty";
  const LoomResult result = run_loom(substituted(args, values));
  ASSERT_FALSE(result.signalled) << "loom crashed: " << result.err;
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(result.err.rfind("loom: error: ", 0), 0u) << result.err;
  EXPECT_NE(result.err.find(expected), std::string::npos) << "expected: " << expected << "\ngot: " << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << "one line only: " << result.err;
  EXPECT_TRUE(fs::is_empty(tmp)) << "something was written into " << tmp;
  fs::remove_all(tmp);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BadCommandLine, ::testing::ValuesIn(bad_cli_names()), [](const auto& info) {
  std::string name = info.param;
  std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
  return name;
});

TEST(BadCommandLines, AtLeastThirtyCases) { EXPECT_GE(bad_cli_names().size(), 30u); }

}  // namespace
}  // namespace loom::cli::testing
