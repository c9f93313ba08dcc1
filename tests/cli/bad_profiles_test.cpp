// Every file in tests/fixtures/bad_profiles/ is a profile that `loom simulate --profile FILE`
// must refuse: exit status 2, one line "loom: error: …" that contains the text of the paired
// .expected file, nothing on stdout, and no crash. Adding a case is adding two files.
// known_bugs/ holds cases the reader accepts today although it should not; they are run by
// their own skipped tests below until the reader is fixed.

#include "../fixture_cases.hpp"
#include "run_loom.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> bad_profile_names() { return loom::testing::fixture_case_names(fixture_path("bad_profiles")); }

// Runs `loom simulate --profile` on bad_profiles/<name>.json and checks the refusal.
void expect_refused(const std::string& name) {
  const std::string expected = loom::testing::fixture_expected_text(fixture_path("bad_profiles"), name);
  ASSERT_FALSE(expected.empty()) << name << ".expected is empty";
  const fs::path input = fixture_path("bad_profiles/" + name + ".json");
  ASSERT_TRUE(fs::exists(input)) << "no input file for " << name;
  const LoomResult result = run_loom("simulate --profile '" + input.string() + "'");
  ASSERT_FALSE(result.signalled) << "loom crashed on " << name << ": " << result.err;
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(result.err.rfind("loom: error: ", 0), 0u) << result.err;
  EXPECT_NE(result.err.find(expected), std::string::npos) << "expected: " << expected << "\ngot: " << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << "one line only: " << result.err;
  EXPECT_TRUE(result.out.empty()) << result.out;
}

class BadProfile : public ::testing::TestWithParam<std::string> {};

TEST_P(BadProfile, IsRefusedWithItsMessage) { expect_refused(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Fixtures, BadProfile, ::testing::ValuesIn(bad_profile_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
                           return name;
                         });

TEST(BadProfiles, AtLeastTwelveCases) { EXPECT_GE(bad_profile_names().size(), 12u); }

// The fixtures start from a valid profile: the same command on the shipped profile succeeds, so
// each refusal above is caused by the one thing its fixture changed.
TEST(BadProfiles, TheirValidBaseIsAccepted) {
  const fs::path base = fs::path(LOOM_FIXTURES_DIR).parent_path().parent_path() / "profiles" / "a100-80gb-dgx.json";
  ASSERT_TRUE(fs::exists(base)) << base;
  const LoomResult result = run_loom("simulate --profile '" + base.string() + "'");
  ASSERT_FALSE(result.signalled) << result.err;
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(result.err.empty()) << result.err;
  EXPECT_FALSE(result.out.empty());
}

}  // namespace
}  // namespace loom::cli::testing
