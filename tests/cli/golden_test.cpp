// Golden cases: tests/golden/NAME.json holds a plan, the profile it is simulated with and the
// prediction `loom simulate --format json` made of it when the file was last accepted. Any change
// of a prediction is a failure here and a visible diff in the file once accepted with
// scripts/update-golden (which reruns this test with LOOM_UPDATE_GOLDEN=1). Adding a case is
// adding a file with "plan" and "profile" and running that script.

#include "core/json_reader.hpp"
#include "run_loom.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;

const fs::path kGoldenDir = LOOM_GOLDEN_DIR;

std::vector<std::string> golden_case_names() {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(kGoldenDir))
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Numbers agree to a relative 1e-9: tighter than any change of the model, looser than the last
// bits a compiler's contraction of a*b+c may change on another CPU (-march=native).
bool numbers_agree(double expected, double actual) {
  return std::abs(expected - actual) <= 1e-9 * std::max({1.0, std::abs(expected), std::abs(actual)}) ||
         (std::abs(expected) < 1e-300 && std::abs(actual) < 1e-300);
}

// Every path at which `actual` differs from `expected`, with both values.
void collect_differences(const core::Json& expected, const core::Json& actual, const std::string& path,
                         std::vector<std::string>& out) {
  if (expected.is_number() && actual.is_number()) {
    if (!numbers_agree(expected.get<double>(), actual.get<double>()))
      out.push_back(fmt::format("{}: expected {}, got {}", path, expected.dump(), actual.dump()));
    return;
  }
  if (expected.type() != actual.type()) {
    out.push_back(fmt::format("{}: expected {}, got {}", path, expected.dump(), actual.dump()));
    return;
  }
  if (expected.is_object()) {
    for (const auto& [key, value] : expected.items()) {
      if (!actual.contains(key)) out.push_back(fmt::format("{}.{}: missing", path, key));
      else collect_differences(value, actual.at(key), path + "." + key, out);
    }
    for (const auto& [key, value] : actual.items())
      if (!expected.contains(key)) out.push_back(fmt::format("{}.{}: new, {}", path, key, value.dump()));
    return;
  }
  if (expected.is_array()) {
    if (expected.size() != actual.size()) {
      out.push_back(fmt::format("{}: expected {} elements, got {}", path, expected.size(), actual.size()));
      return;
    }
    for (size_t i = 0; i < expected.size(); ++i)
      collect_differences(expected[i], actual[i], fmt::format("{}[{}]", path, i), out);
    return;
  }
  if (expected != actual) out.push_back(fmt::format("{}: expected {}, got {}", path, expected.dump(), actual.dump()));
}

class GoldenPrediction : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenPrediction, IsWhatTheSimulatorPredicts) {
  const fs::path file = kGoldenDir / (GetParam() + ".json");
  core::Json golden = core::parse_json_text(read_file(file), file.string());
  ASSERT_TRUE(golden.contains("plan") && golden.contains("profile")) << file << " needs \"plan\" and \"profile\"";
  const fs::path plan = fs::temp_directory_path() / fmt::format("loom-golden-{}-{}.json", getpid(), GetParam());
  std::ofstream(plan) << golden.at("plan").dump(2) << "\n";
  const LoomResult r = run_loom(fmt::format("simulate '{}' --profile '{}' --format json", plan.string(),
                                            golden.at("profile").get<std::string>()));
  fs::remove(plan);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const core::Json predicted = core::parse_json_text(r.out, "loom simulate");

  if (std::getenv("LOOM_UPDATE_GOLDEN") != nullptr) {
    golden["expected"] = predicted;
    const fs::path temporary = file.string() + ".tmp";
    std::ofstream out(temporary);
    out << golden.dump(2) << "\n";
    out.close();
    ASSERT_TRUE(out.good()) << "cannot write " << temporary;
    fs::rename(temporary, file);
    return;
  }
  ASSERT_TRUE(golden.contains("expected")) << file << " has no \"expected\" yet: run scripts/update-golden";
  std::vector<std::string> differences;
  collect_differences(golden.at("expected"), predicted, "prediction", differences);
  std::string listed;
  for (const std::string& d : differences) listed += "\n  " + d;
  EXPECT_TRUE(differences.empty()) << file.filename().string() << ": the prediction changed (" << differences.size()
                                   << " values); if the change is intended, accept it with scripts/update-golden and "
                                      "review the diff:"
                                   << listed;
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenPrediction, ::testing::ValuesIn(golden_case_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
                           return name;
                         });

// One per schedule, recompute, sequence parallelism with ZeRO-1, a CPU profile, a Llama model and
// a plan that does not fit: fewer would let a part of the simulator change unseen.
TEST(GoldenCases, CoverTheSchedulesAndKnobs) { EXPECT_GE(golden_case_names().size(), 8u); }

// The comparison itself: a changed number, a missing key and a new one are each reported.
TEST(GoldenCases, DifferencesAreFoundAndNamed) {
  const core::Json expected = {{"step_time_s", 1.0}, {"memory", {{{"stage", 0}, {"total_bytes", 10}}}}, {"fits", true}};
  core::Json actual = expected;
  std::vector<std::string> none;
  collect_differences(expected, actual, "prediction", none);
  EXPECT_TRUE(none.empty());
  actual["step_time_s"] = 1.0 + 1e-12;  // rounding on another CPU
  collect_differences(expected, actual, "prediction", none);
  EXPECT_TRUE(none.empty());
  actual["step_time_s"] = 1.001;
  actual["memory"][0]["total_bytes"] = 11;
  actual.erase("fits");
  actual["new_key"] = 3;
  std::vector<std::string> found;
  collect_differences(expected, actual, "prediction", found);
  ASSERT_EQ(found.size(), 4u);
  EXPECT_NE(std::find(found.begin(), found.end(), "prediction.fits: missing"), found.end());
  EXPECT_NE(std::find(found.begin(), found.end(), "prediction.step_time_s: expected 1.0, got 1.001"), found.end());
  EXPECT_NE(std::find(found.begin(), found.end(), "prediction.memory[0].total_bytes: expected 10, got 11"), found.end());
  EXPECT_NE(std::find(found.begin(), found.end(), "prediction.new_key: new, 3"), found.end());
}

}  // namespace
}  // namespace loom::cli::testing
