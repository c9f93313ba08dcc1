// `loom plan` with uneven layer splits and mixed clusters: --cluster-groups, --even-splits-only,
// the "layers" column, and one clear error line for every malformed or conflicting input.

#include "run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace loom::cli::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const std::string kMixed = "plan --model gpt2-124m --cluster-groups 1x2:a100-80gb-dgx,1x2:h100-80gb-dgx "
                           "--global-batch-size 16 --top 3";

TEST(LoomPlanMixed, ClusterGroupsSearchesTheMixedClusterAndNamesEachRanksGroup) {
  const LoomResult result = run_loom(kMixed);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("mixed: 1 x a100-80gb-dgx then 1 x h100-80gb-dgx"));
  EXPECT_THAT(result.out, HasSubstr("layers"));
  EXPECT_THAT(result.out, HasSubstr("pipeline ranks:group"));
  EXPECT_THAT(result.out, HasSubstr(":h100-80gb-dgx"));
}

TEST(LoomPlanMixed, EveryOrderOfTheGroupsIsSearchedUnlessKept) {
  const std::string h100_first = "plan --model gpt2-124m --cluster-groups 1x2:h100-80gb-dgx,1x2:a100-80gb-dgx "
                                 "--global-batch-size 16 --top 5 --format json";
  const LoomResult both = run_loom(h100_first);
  const LoomResult kept = run_loom(h100_first + " --keep-group-order");
  ASSERT_EQ(both.exit_code, 0) << both.err;
  ASSERT_EQ(kept.exit_code, 0) << kept.err;
  // Parsed into names of their own: a range over a member of a temporary would dangle.
  const nlohmann::json both_json = nlohmann::json::parse(both.out), kept_json = nlohmann::json::parse(kept.out);
  bool a100_first_seen = false;
  for (const auto& plan : both_json["plans"])
    a100_first_seen = a100_first_seen || plan["plan"]["cluster"]["groups"][0]["profile"] == "a100-80gb-dgx";
  EXPECT_TRUE(a100_first_seen) << "both orders are searched, and the A100-first one places in the top 5";
  for (const auto& plan : kept_json["plans"])
    EXPECT_EQ(plan["plan"]["cluster"]["groups"][0]["profile"], "h100-80gb-dgx") << plan.dump();
}

TEST(LoomPlanMixed, JsonPlansCarryTheGroups) {
  const LoomResult result = run_loom(kMixed + " --format json");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  ASSERT_FALSE(json["plans"].empty());
  for (const auto& plan : json["plans"]) EXPECT_TRUE(plan["plan"]["cluster"].contains("groups")) << plan.dump();
}

TEST(LoomPlanMixed, EvenSplitsOnlyShowsEvenEverywhere) {
  const LoomResult result =
      run_loom("plan --model gpt2-124m --devices 8 --global-batch-size 64 --top 20 --even-splits-only --format csv");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr(",layer_split"));
  size_t rows = 0;
  for (size_t at = result.out.find('\n'); at != std::string::npos && at + 1 < result.out.size();
       at = result.out.find('\n', at + 1)) {
    const size_t end = result.out.find('\n', at + 1);
    const std::string line = result.out.substr(at + 1, end - at - 1);
    if (line.empty()) continue;
    EXPECT_THAT(line, ::testing::EndsWith(",even")) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 20u);
  // The even space alone, as before uneven splits: 5940 combinations × the three overlap switches.
  const LoomResult json = run_loom(
      "plan --model gpt2-124m --devices 8 --global-batch-size 64 --top 3 --even-splits-only --format json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["stats"]["combinations"].get<int64_t>(), 5940 * 8);
}

TEST(LoomPlanMixed, MalformedOrConflictingClusterGroupsAreOneErrorLine) {
  const std::string base = "plan --model gpt2-124m --global-batch-size 16 ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--cluster-groups ''", "--cluster-groups is empty"},
      {"--cluster-groups 1x2:a100-80gb-dgx", "a mixed cluster has 2 or more"},
      {"--cluster-groups 1x2:a100-80gb-dgx,", "entry 2 \"\""},
      {"--cluster-groups 1x2a100-80gb-dgx,1x2:h100-80gb-dgx", "entry 1 \"1x2a100-80gb-dgx\""},
      {"--cluster-groups 2:a100-80gb-dgx,1x2:h100-80gb-dgx", "entry 1 \"2:a100-80gb-dgx\""},
      {"--cluster-groups 0x2:a100-80gb-dgx,1x2:h100-80gb-dgx", "the nodes \"0\""},
      {"--cluster-groups=-1x2:a100-80gb-dgx,1x2:h100-80gb-dgx", "the nodes \"-1\""},
      {"--cluster-groups 1xtwo:a100-80gb-dgx,1x2:h100-80gb-dgx", "the devices per node \"two\""},
      {"--cluster-groups 99999999999999999999x2:a100-80gb-dgx,1x2:h100-80gb-dgx", "the nodes"},
      {"--cluster-groups 1x2:,1x2:h100-80gb-dgx", "names no profile"},
      {"--cluster-groups 1x2:a100-80gb-dgx,1x4:h100-80gb-dgx", "devices-per-node"},
      {"--cluster-groups 1x2:a100-80gb-dgx,1x2:no-such-gpu", "no-such-gpu"},
      {"--cluster-groups 1x2:a100-80gb-dgx,1x2:h100-80gb-dgx --devices 4", "cannot be used with --devices"},
      {"--cluster-groups 1x2:a100-80gb-dgx,1x2:h100-80gb-dgx --devices-per-node 2",
       "cannot be used with --devices-per-node"},
      {"--cluster-groups 1x2:a100-80gb-dgx,1x2:h100-80gb-dgx --profile a100-80gb-dgx", "cannot be used with --profile"},
      {"--cluster-groups 1x2:a100-80gb-dgx,1x2:h100-80gb-dgx --allow-fewer-devices",
       "cannot be used with --allow-fewer-devices"},
      {"--devices 8 --keep-group-order", "--keep-group-order only applies to a mixed cluster"},
  };
  for (const auto& [args, fragment] : cases) {
    const LoomResult result = run_loom(base + args);
    EXPECT_FALSE(result.signalled) << args;
    EXPECT_EQ(result.exit_code, 2) << args << "\n" << result.err;
    EXPECT_THAT(result.err, StartsWith("loom: error: ")) << args;
    EXPECT_THAT(result.err, HasSubstr(fragment)) << args << "\n" << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << args << "\n" << result.err;
    EXPECT_TRUE(result.out.empty()) << args << " printed: " << result.out;
  }
}

}  // namespace
}  // namespace loom::cli::testing
