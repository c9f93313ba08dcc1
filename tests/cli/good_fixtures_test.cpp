// Every file in tests/fixtures/good/ is a plan edited by hand the way a user would (a tp or head
// count changed after `loom init`, an older plan, both vocabulary forms) that Loom must accept:
// `loom show` exits 0 and prints the paired .expected text, `loom simulate` predicts it, and the
// plan `loom show --format json` reports is the file as written (keys it lacks added after its own).
// Adding a case is adding two files.

#include "../fixture_cases.hpp"
#include "run_loom.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace loom::cli::testing {
namespace {

std::vector<std::string> good_fixture_names() {
  return loom::testing::fixture_case_names(fixture_path("good"));
}

class GoodFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(GoodFixture, IsShownSimulatedAndReadBackAsWritten) {
  const std::string name = GetParam();
  const std::string expected = loom::testing::fixture_expected_text(fixture_path("good"), name);
  ASSERT_FALSE(expected.empty()) << name << ".expected is empty";
  const std::string input = fixture_path("good/" + name + ".json");
  const LoomResult shown = run_loom("show '" + input + "'");
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find(expected), std::string::npos)
      << "expected: " << expected << "\ngot: " << shown.out;
  const LoomResult simulated = run_loom("simulate '" + input + "' --format json");
  ASSERT_EQ(simulated.exit_code, 0) << simulated.err;
  EXPECT_GT(nlohmann::json::parse(simulated.out)["step_time_s"].get<double>(), 0);
  const LoomResult json = run_loom("show '" + input + "' --format json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  // Keys a plan written before Megatron-Core's settings lacks are written after its own, with the
  // values that mean what the plan meant (unfused attention, no overlap).
  auto as_written = nlohmann::ordered_json::parse(read_file(input));
  const nlohmann::ordered_json older_meaning = {{"attention-backend", "unfused"},
                                                {"overlap-grad-reduce", false},
                                                {"overlap-param-gather", false},
                                                {"tp-comm-overlap", false},
                                                {"ddp-bucket-size", nullptr}};
  std::vector<std::string> absent;
  for (const auto& [key, value] : older_meaning.items())
    if (!as_written["parallel"].contains(key)) {
      as_written["parallel"][key] = value;
      absent.push_back(key);
    }
  const auto reported = nlohmann::ordered_json::parse(json.out);
  EXPECT_EQ(reported["plan"], as_written);
  EXPECT_EQ(reported["megatron_core_settings"]["absent_keys"], nlohmann::ordered_json(absent));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoodFixture, ::testing::ValuesIn(good_fixture_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace_if(
                               name.begin(), name.end(), [](char c) { return !std::isalnum(c); },
                               '_');
                           return name;
                         });

}  // namespace
}  // namespace loom::cli::testing
