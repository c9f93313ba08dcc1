// Uneven pipeline splits and mixed clusters at the command line (issue 23): `loom export megatron`
// says a split in Megatron's flags or refuses it in one line, `loom import megatron` reads those
// flags back to the same split, `loom show` and `loom simulate` say which stage holds what and
// where, and --profile cannot override a mixed cluster's groups.

#include "core/error.hpp"
#include "core/plan_json.hpp"
#include "planner/megatron_args.hpp"
#include "planner/megatron_plan.hpp"
#include "run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace loom::cli::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

std::string good(const std::string& name) { return fixture_path("good/" + name + ".json"); }

class UnevenSplitCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("loom_uneven_split_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The fixture `base` with its parallel section changed, written as a plan file.
  std::string plan_with(const std::string& base, const nlohmann::json& parallel_changes, const std::string& name) {
    nlohmann::ordered_json plan = nlohmann::ordered_json::parse(read_file(good(base)));
    for (const auto& [key, value] : parallel_changes.items()) {
      if (value.is_null())
        plan["parallel"].erase(key);
      else
        plan["parallel"][key] = value;
    }
    const fs::path path = dir_ / (name + ".json");
    std::ofstream(path) << plan.dump(2);
    return path.string();
  }

  void expect_refused(const std::string& arguments, const std::string& message) {
    const LoomResult r = run_loom(arguments);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err.rfind("loom: error: ", 0), 0u) << r.err;
    EXPECT_THAT(r.err, HasSubstr(message));
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }

  fs::path dir_;
};

TEST_F(UnevenSplitCli, ExportSaysAFirstLastSplitInMegatronsFlags) {
  const LoomResult r = run_loom("export megatron " + good("uneven-split-2-4-4-2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--decoder-first-pipeline-num-layers 2 \\"));
  EXPECT_THAT(r.out, HasSubstr("--decoder-last-pipeline-num-layers 2 \\"));
  EXPECT_THAT(r.out, HasSubstr("# Uneven pipeline split: transformer layers per pipeline rank 2, 4, 4, 2."));
  EXPECT_THAT(r.out, Not(HasSubstr("pipeline-layer-split")));
  EXPECT_THAT(r.out, Not(HasSubstr("virtual")));
}

TEST_F(UnevenSplitCli, ExportKeepsMegatronsOwnKeys) {
  const LoomResult first_last = run_loom("export megatron " + good("decoder-first-last-interleaved"));
  ASSERT_EQ(first_last.exit_code, 0) << first_last.err;
  EXPECT_THAT(first_last.out, HasSubstr("--num-virtual-stages-per-pipeline-rank 2 \\"));
  EXPECT_THAT(first_last.out, HasSubstr("--decoder-first-pipeline-num-layers 2 \\"));
  EXPECT_THAT(first_last.out, HasSubstr("--decoder-last-pipeline-num-layers 2 \\"));
  EXPECT_THAT(first_last.out, HasSubstr("(per virtual stage, in model order: 1, 2, 2, 1, 1, 2, 2, 1)"));
  const LoomResult accounted = run_loom("export megatron " + good("account-for-embedding-and-loss"));
  ASSERT_EQ(accounted.exit_code, 0) << accounted.err;
  EXPECT_THAT(accounted.out, HasSubstr("--account-for-embedding-in-pipeline-split \\"));
  EXPECT_THAT(accounted.out, HasSubstr("--account-for-loss-in-pipeline-split \\"));
}

TEST_F(UnevenSplitCli, ExportConvertsAnInterleavedSplitWhoseRanksSplitEvenlyOverTheirChunks) {
  // Rank 0: 2 + 2, rank 1: 4 + 4: the first rank differs, each splits evenly over its 2 chunks.
  const std::string plan = plan_with("interleaved-uneven-split", {{"pipeline-layer-split", {2, 4, 2, 4}}}, "chunks");
  const LoomResult r = run_loom("export megatron " + plan);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--num-virtual-stages-per-pipeline-rank 2 \\"));
  EXPECT_THAT(r.out, HasSubstr("--decoder-first-pipeline-num-layers 4 \\"));
  EXPECT_THAT(r.out, Not(HasSubstr("--decoder-last-pipeline-num-layers")));
  // An even split written out needs no split flag at all.
  const LoomResult even = run_loom("export megatron " + plan_with("uneven-split-2-4-4-2", {{"pipeline-layer-split", {3, 3, 3, 3}}}, "even"));
  ASSERT_EQ(even.exit_code, 0) << even.err;
  EXPECT_THAT(even.out, Not(HasSubstr("pipeline-num-layers")));
  EXPECT_THAT(even.out, Not(HasSubstr("Uneven")));
}

TEST_F(UnevenSplitCli, ExportRefusesASplitMegatronsFlagsCannotSayNamingTheLayout) {
  expect_refused("export megatron " + good("interleaved-uneven-split"),
                 "pipeline-layer-split=[2, 4, 3, 3] cannot be said in Megatron-LM's flags: pipeline rank 0's 2 virtual "
                 "stages hold different layer counts (2 and 3), and Megatron splits each rank's layers evenly over "
                 "its virtual stages; Megatron-Core's --pipeline-model-parallel-layout \"Et*2|t*4|t*3|t*3L\" "
                 "(experimental) would express it");
  expect_refused("export megatron " + plan_with("uneven-split-2-4-4-2", {{"pipeline-layer-split", {2, 5, 3, 2}}}, "middle"),
                 "pipeline ranks 1 and 2 hold 5 and 3 layers, and Megatron gives every rank but the first and the last "
                 "the same number");
  expect_refused("export megatron " + plan_with("uneven-split-2-4-4-2", {{"pipeline-layer-split", {0, 4, 4, 4}}}, "empty"),
                 "--pipeline-model-parallel-layout \"E|t*4|t*4|t*4L\"");
}

TEST_F(UnevenSplitCli, ExportOfAMixedClusterSaysWhichHostsTakeWhichNodeRanks) {
  const LoomResult r = run_loom("export megatron " + good("mixed-cluster-a100-then-h100"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("# Mixed cluster: Megatron-LM does not know device kinds"));
  EXPECT_THAT(r.out, HasSubstr("#   --node-rank 0 on a100-80gb-dgx hosts: ranks 0-7, pipeline stage(s) 0-1"));
  EXPECT_THAT(r.out, HasSubstr("#   --node-rank 1 on h100-80gb-dgx hosts: ranks 8-15, pipeline stage(s) 2-3"));
  EXPECT_THAT(r.out, HasSubstr("torchrun --nnodes 2 --nproc-per-node 8"));
}

// Megatron's arguments block as `loom export megatron` would make Megatron print it: each flag
// with underscores, switches as True, plus what Megatron derives (world size, virtual stages).
plan::MegatronLog log_of_export(const core::Plan& plan) {
  plan::MegatronLog log;
  log.file_name = "export.log";
  const std::vector<std::string> args = plan::megatron_arguments(plan);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i].substr(2);
    std::replace(name.begin(), name.end(), '-', '_');
    const bool has_value = i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0;
    log.arguments[name] = has_value ? args[++i] : "True";
  }
  log.arguments["world_size"] = std::to_string(plan.cluster.world_size());
  if (plan.virtual_stages() > 1) log.arguments["virtual_pipeline_model_parallel_size"] = std::to_string(plan.virtual_stages());
  log.tokenizer_vocab_size = 50257;
  return log;
}

TEST_F(UnevenSplitCli, ImportReadsTheSplitFlagsBackToTheSameLayers) {
  for (const char* name : {"uneven-split-2-4-4-2", "decoder-first-last-interleaved", "account-for-embedding-and-loss"}) {
    const core::Plan plan = core::read_plan_file(good(name));
    plan::MegatronPlanOptions options;
    options.devices_per_node = plan.cluster.devices_per_node;
    const core::Plan imported = plan::plan_from_megatron_arguments(log_of_export(plan), options);
    EXPECT_EQ(imported.virtual_stage_layers(), plan.virtual_stage_layers()) << name;
    EXPECT_EQ(imported.virtual_stages(), plan.virtual_stages()) << name;
  }
  // A layout Loom does not read is refused by name rather than imported as an even split.
  plan::MegatronLog log = log_of_export(core::read_plan_file(good("uneven-split-2-4-4-2")));
  log.arguments["pipeline_model_parallel_layout"] = "Et*2|t*4|t*4|t*2L";
  try {
    plan::plan_from_megatron_arguments(log, {});
    ADD_FAILURE() << "a pipeline layout was imported";
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("--pipeline-model-parallel-layout Et*2|t*4|t*4|t*2L, which Loom does not read"));
  }
}

TEST_F(UnevenSplitCli, ShowNamesEachStagesRanksGroupAndLayers) {
  const LoomResult table = run_loom("show " + good("mixed-cluster-a100-then-h100"));
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("2 device groups, in pipeline order: 1 node(s) × 8 of a100-80gb-dgx"));
  EXPECT_THAT(table.out, HasSubstr("Pipeline stages (ranks, device group and transformer layers of each)"));
  EXPECT_THAT(table.out, ::testing::ContainsRegex("2 +8–11 +1: h100-80gb-dgx +4"));
  const LoomResult json = run_loom("show " + good("mixed-cluster-a100-then-h100") + " --format json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto shown = nlohmann::json::parse(json.out);
  EXPECT_EQ(shown["pipeline_stage_layers"], nlohmann::json({2, 4, 4, 2}));
  EXPECT_EQ(shown["layer_split"], "pipeline-layer-split");
  EXPECT_EQ(shown["pipeline_stages"][3],
            nlohmann::json({{"stage", 3}, {"first_rank", 12}, {"last_rank", 15}, {"device_group", 1},
                            {"profile", "h100-80gb-dgx"}, {"layers", 2}, {"virtual_stage_layers", {2}}}));
}

TEST_F(UnevenSplitCli, SimulateTimesEachGroupOnItsOwnProfileAndNamesTheBottleneck) {
  const LoomResult r = run_loom("simulate " + good("mixed-cluster-a100-then-h100"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Pipeline stages: layers 2, 4, 4, 2 (pipeline-layer-split); stages 0–1 on a100-80gb-dgx"));
  EXPECT_THAT(r.out, HasSubstr("◀ bottleneck"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("bottleneck: pipeline stage [0-3] \\([0-9]+ layers on [a-z0-9-]+\\)"));
  const LoomResult json = run_loom("simulate " + good("mixed-cluster-a100-then-h100") + " --format json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_TRUE(nlohmann::json::parse(json.out).contains("bottleneck_pipeline_stage"));
}

TEST_F(UnevenSplitCli, ProfileCannotOverrideAMixedClustersGroups) {
  const std::string message = "--profile h100-80gb-dgx cannot be used with a mixed cluster: its 2 device groups each "
                              "name their own profile (cluster.groups[].profile)";
  expect_refused("simulate " + good("mixed-cluster-a100-then-h100") + " --profile h100-80gb-dgx", message);
  expect_refused("run " + good("mixed-cluster-a100-then-h100") + " --profile h100-80gb-dgx --dry-run", message);
}

}  // namespace
}  // namespace loom::cli::testing
