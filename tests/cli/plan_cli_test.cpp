// `loom plan` and `loom export megatron` as a user meets them: the ranked plans in each output
// format, the files they write, the store they fill, and clear errors for bad requests.

#include "run_loom.hpp"

#include "core/store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace loom::cli::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const std::string kSmall = "plan --model gpt2-124m --devices 8 --global-batch-size 64 --top 3";

// A scratch directory, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("loom_plan_cli_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

TEST(LoomPlan, JsonHasThePlansEachWithPlanAndPrediction) {
  const LoomResult result = run_loom(kSmall + " --format json");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(result.err.empty()) << "no progress bar when output is not a terminal: " << result.err;
  const auto json = nlohmann::json::parse(result.out);
  ASSERT_TRUE(json.contains("plans"));
  ASSERT_EQ(json["plans"].size(), 3u);
  double previous = 0;
  for (const auto& entry : json["plans"]) {
    ASSERT_TRUE(entry.contains("plan"));
    ASSERT_TRUE(entry.contains("prediction"));
    EXPECT_EQ(entry["plan"]["format"], "loom-plan");
    const double step = entry["prediction"]["step_time_s"].get<double>();
    EXPECT_GT(step, 0);
    EXPECT_GE(step, previous) << "ranked by step time";
    previous = step;
  }
  EXPECT_GT(json["stats"]["valid"].get<int64_t>(), 0);
  // 8: the three overlap switches; uneven layer splits come on top (plan_mixed_cli_test.cpp).
  EXPECT_GT(json["stats"]["combinations"].get<int64_t>(), 5940 * 8);
}

TEST(LoomPlan, CsvIsAHeaderAndOneRowPerPlan) {
  const LoomResult result = run_loom(kSmall + " --format csv");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> lines = lines_of(result.out);
  ASSERT_EQ(lines.size(), 4u) << result.out;
  EXPECT_THAT(lines[0], StartsWith("rank,tp,pp,dp,"));
  const auto fields = [](const std::string& line) { return std::count(line.begin(), line.end(), ',') + 1; };
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_THAT(lines[i], StartsWith(std::to_string(i) + ","));
    EXPECT_EQ(fields(lines[i]), fields(lines[0])) << lines[i];
  }
}

TEST(LoomPlan, TableShowsTheRankedPlansWithTheirPredictions) {
  const LoomResult result = run_loom(kSmall);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(result.err.empty()) << result.err;
  for (const char* text : {"tp", "pp", "dp", "vpp", "mbs", "schedule", "recompute", "dist-opt", "overlap", "step time", "tokens/s",
                           "MFU", "peak memory", "headroom", "Best 3"})
    EXPECT_THAT(result.out, HasSubstr(text));
  EXPECT_THAT(result.out, Not(HasSubstr("Rejected combinations")));
}

TEST(LoomPlan, OutWritesABestPlanThatShowAndExportAccept) {
  TempDir dir;
  const std::string out = dir.file("best.json");
  const LoomResult result = run_loom(kSmall + " --format json --out '" + out + "'");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  ASSERT_TRUE(std::filesystem::exists(out));
  // The file is the best plan of the search.
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(nlohmann::json::parse(read_file(out)), json["plans"][0]["plan"]);

  const LoomResult show = run_loom("show '" + out + "'");
  EXPECT_EQ(show.exit_code, 0) << show.err;
  const LoomResult exported = run_loom("export megatron '" + out + "'");
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_THAT(exported.out, HasSubstr("torchrun --nnodes 1 --nproc-per-node 8 pretrain_gpt.py"));
  EXPECT_THAT(exported.out, HasSubstr("--tensor-model-parallel-size"));
  EXPECT_THAT(exported.out, HasSubstr("--global-batch-size 64"));
}

TEST(LoomPlan, TableWithOutSaysWhereTheBestPlanWent) {
  TempDir dir;
  const std::string out = dir.file("best.json");
  const LoomResult result = run_loom(kSmall + " --out '" + out + "'");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr(out));
  EXPECT_EQ(run_loom("show '" + out + "'").exit_code, 0);
}

TEST(LoomPlan, DbStoresEveryRankedPlanWithItsPrediction) {
  TempDir dir;
  const std::string db = dir.file("loom.db");
  const LoomResult result = run_loom(kSmall + " --pareto --db '" + db + "' --format json");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  const size_t ranked = json["plans"].size() + json["pareto"].size();
  ASSERT_EQ(json["plans"].size(), 3u);

  core::Store store = core::Store::open(db);
  const std::vector<core::PlanRow> plans = store.list_plans();
  ASSERT_EQ(plans.size(), ranked);
  for (const core::PlanRow& row : plans) {
    const std::vector<core::PredictionRow> predictions = store.predictions_for_plan(row.id);
    ASSERT_EQ(predictions.size(), 1u) << row.name;
    EXPECT_GT(predictions[0].step_time_s.value_or(0), 0) << row.name;
    EXPECT_EQ(row.model_name, "gpt2-124m");
  }
  // A second search adds to the same store.
  ASSERT_EQ(run_loom(kSmall + " --db '" + db + "' --format csv").exit_code, 0);
  EXPECT_EQ(core::Store::open(db).list_plans().size(), ranked + 3);
}

TEST(LoomPlan, ExplainShowsTheRejectedCombinationsByReason) {
  const LoomResult result = run_loom(kSmall + " --explain");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("Rejected combinations"));
  EXPECT_THAT(result.out, HasSubstr("sequence parallel needs tp > 1"));
}

TEST(LoomPlan, BadRequestsAreBadInput) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"plan --model gpt-9 --devices 8", "gpt-9"},
      {"plan --model gpt2-124m --profile no-such-gpu", "no-such-gpu"},
      {"plan --model gpt2-124m --devices 12 --devices-per-node 8", "--devices-per-node"},
      {"plan --model gpt2-124m --global-batch-size 0", "global-batch-size"},
      {"plan --model gpt2-124m --objective cost", "--price-per-device-hour"},
      {"plan --model gpt2-124m --objective fastest", "--objective"},
      {"plan --model gpt2-124m --format xml", "--format"},
      {"plan --model gpt2-124m --devices 0", "--devices"},
      {"plan --model gpt2-124m --devices -8", "--devices"},
      {"plan --model /no/such/model.json", "/no/such/model.json"},
  };
  for (const auto& [args, fragment] : cases) {
    const LoomResult result = run_loom(args);
    EXPECT_FALSE(result.signalled) << args;
    EXPECT_EQ(result.exit_code, 2) << args << "\n" << result.err;
    EXPECT_THAT(result.err, StartsWith("loom: error: ")) << args;
    EXPECT_THAT(result.err, HasSubstr(fragment)) << args;
    EXPECT_TRUE(result.out.empty()) << args << " printed: " << result.out;
  }
}

TEST(LoomPlan, TopZeroOrNegativeIsBadInputNotNothingFits) {
  for (const char* top : {"0", "-3"}) {
    const LoomResult result = run_loom("plan --model gpt2-124m --devices 8 --global-batch-size 64 --top " + std::string(top));
    EXPECT_EQ(result.exit_code, 2) << "--top " << top << "\n" << result.err;
    EXPECT_THAT(result.err, StartsWith("loom: error: ")) << top;
    EXPECT_THAT(result.err, HasSubstr("--top")) << top;
    EXPECT_THAT(result.out + result.err, Not(HasSubstr("no plan fits"))) << top;
    EXPECT_THAT(result.out, Not(HasSubstr("No plan fits"))) << top;
  }
}

TEST(LoomPlan, BatchNoPlanCanSplitIsBadInputNotAMemoryMiss) {
  // 256 devices: tp ≤ 8 times pp ≤ 12 (the layers, even split or not) leaves dp ≥ 4, and 4 ∤ 2.
  const LoomResult result = run_loom("plan --model gpt2-124m --devices 256 --global-batch-size 2");
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_THAT(result.err, StartsWith("loom: error: "));
  EXPECT_THAT(result.err, Not(HasSubstr("GiB"))) << "memory is not why";
  EXPECT_THAT(result.out, Not(HasSubstr("nearest misses")));
  EXPECT_THAT(result.out + result.err, HasSubstr("global batch"));
}

TEST(LoomPlan, CostObjectiveWithAPriceRanksPlans) {
  const LoomResult result = run_loom(kSmall + " --objective cost --price-per-device-hour 2 --format json");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["objective"], "cost");
  ASSERT_EQ(json["plans"].size(), 3u);
  for (const auto& entry : json["plans"]) EXPECT_GT(entry["cost_per_step"].get<double>(), 0);
}

TEST(LoomPlan, NothingFitsFailsAndShowsTheNearestMisses) {
  const LoomResult result = run_loom("plan --model megatron-1t --devices 8 --global-batch-size 64");
  EXPECT_FALSE(result.signalled);
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_THAT(result.out, HasSubstr("nearest misses"));
  EXPECT_THAT(result.out, HasSubstr("lacking"));
  EXPECT_THAT(result.out, HasSubstr("Rejected combinations"));
  EXPECT_THAT(result.err, StartsWith("loom: error: "));
  EXPECT_THAT(result.err, HasSubstr("no plan fits"));

  const LoomResult json = run_loom("plan --model megatron-1t --devices 8 --global-batch-size 64 --format json");
  EXPECT_EQ(json.exit_code, 1);
  const auto parsed = nlohmann::json::parse(json.out);
  EXPECT_TRUE(parsed["plans"].empty());
  ASSERT_FALSE(parsed["nearest_misses"].empty());
  for (const auto& miss : parsed["nearest_misses"]) EXPECT_GT(miss["lacking_bytes"].get<int64_t>(), 0);
}

TEST(LoomPlan, NothingFitsWritesNoPlanFile) {
  TempDir dir;
  const std::string out = dir.file("best.json");
  const LoomResult result = run_loom("plan --model megatron-1t --devices 8 --global-batch-size 64 --out '" + out + "'");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(LoomExport, MegatronPrintsATorchrunCommand) {
  const LoomResult result = run_loom("export megatron");  // the built-in default plan
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("torchrun --nnodes"));
  EXPECT_THAT(result.out, HasSubstr("--tensor-model-parallel-size"));
  EXPECT_THAT(result.out, HasSubstr("--pipeline-model-parallel-size"));
}

TEST(LoomExport, MissingOrBadPlanFileIsBadInput) {
  for (const std::string args : {"export megatron /no/such/plan.json", "export torchtitan /no/such/plan.json"}) {
    const LoomResult result = run_loom(args);
    EXPECT_EQ(result.exit_code, 2) << args << "\n" << result.err;
    EXPECT_THAT(result.err, StartsWith("loom: error: ")) << args;
    EXPECT_TRUE(result.out.empty()) << args;
  }
  const LoomResult garbage = run_loom("export megatron -", "{ this is not a plan");
  EXPECT_EQ(garbage.exit_code, 2) << garbage.err;
  EXPECT_THAT(garbage.err, StartsWith("loom: error: "));
}

}  // namespace
}  // namespace loom::cli::testing
