// The `loom` binary as a user meets it: exit statuses, messages, and the numbers it prints.

#include "run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace loom::cli::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(LoomCli, VersionAndHelp) {
  const LoomResult version = run_loom("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.out, StartsWith("loom "));
  const LoomResult help = run_loom("--help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* text : {"presets", "show", "init", "Examples:"}) EXPECT_THAT(help.out, HasSubstr(text));
  EXPECT_EQ(run_loom("init --help").exit_code, 0);
}

// Each command's help ends with its own examples, not the top level's (a nested subcommand takes
// its parent's footer when it is made, so the order of set-up matters).
TEST(LoomCli, EveryCommandsHelpShowsItsOwnExamples) {
  const std::vector<std::pair<std::string, std::string>> commands = {
      {"import megatron", "loom import megatron train.log"}, {"import llmc", "loom import llmc gpt2.log"},
      {"calibrate", "loom calibrate --db"}, {"replan", "loom replan ckpt"}, {"runs", "loom runs --db"},
      {"compare", "loom compare 1"}, {"checkpoint export", "loom checkpoint export"},
      {"export megatron", "loom export megatron"}};
  for (const auto& [command, example] : commands) {
    const LoomResult help = run_loom(command + " --help");
    EXPECT_EQ(help.exit_code, 0) << command;
    EXPECT_THAT(help.out, HasSubstr(example)) << command;
    EXPECT_EQ(help.out.find("a starting plan from a preset"), std::string::npos) << command << ": the top level's examples";
  }
}

TEST(LoomCli, UnknownFlagAndCommandAreBadInput) {
  for (const char* args : {"--frobnicate", "show --frobnicate", "frobnicate", "show --format xml"}) {
    const LoomResult result = run_loom(args);
    EXPECT_EQ(result.exit_code, 2) << args;
    EXPECT_THAT(result.err, StartsWith("loom: error: ")) << args;
  }
}

TEST(LoomCli, PresetsListModelsAndProfiles) {
  const LoomResult result = run_loom("presets");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  for (const char* text : {"gpt2-124m", "llama3-405b", "megatron-1t", "a100-80gb-dgx", "h100-80gb-dgx",
                           "datasheet", "Sources:"})
    EXPECT_THAT(result.out, HasSubstr(text));
  const LoomResult models = run_loom("presets --models --format json");
  ASSERT_EQ(models.exit_code, 0);
  const auto json = nlohmann::json::parse(models.out);
  EXPECT_FALSE(json.contains("profiles"));
  EXPECT_EQ(json["models"][0]["name"], "gpt2-124m");
  EXPECT_EQ(json["models"][0]["parameters"], 124439808);
  EXPECT_EQ(json["models"][0]["vocab-size"], 50257);  // the tokenizer's, padded per tp by the plan
  EXPECT_FALSE(json["models"][0].contains("padded-vocab-size"));
}

TEST(LoomCli, ShowWithoutAPlanExplainsTheDefault) {
  const LoomResult result = run_loom("show");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  for (const char* text : {"built-in default", "parameters", "microbatches per step", "model FLOPs per step",
                           "Rank layout", "tensor", "within a node"})
    EXPECT_THAT(result.out, HasSubstr(text));
}

TEST(LoomCli, Gpt2PlanReportsItsExactParameterCount) {
  const LoomResult plan = run_loom("init --model gpt2-124m --devices-per-node 1");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const LoomResult table = run_loom("show -", plan.out);
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("124,439,808"));
  const LoomResult json = run_loom("show - --format json", plan.out);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto derived = nlohmann::json::parse(json.out);
  EXPECT_EQ(derived["parameters"], 124439808);
  EXPECT_EQ(derived["world_size"], 1);
  EXPECT_EQ(derived["microbatches"], 8);
  EXPECT_GT(derived["model_flops_per_step"].get<double>(), 0);
}

TEST(LoomCli, TensorParallelThreeOnThirtyTwoHeadsNamesBothNumbers) {
  const LoomResult result = run_loom("init --model llama2-7b --tp 3 --devices-per-node 3");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(result.err, "loom: error: tensor-model-parallel-size=3 does not divide num-attention-heads=32\n");
  EXPECT_TRUE(result.out.empty());
}

TEST(LoomCli, InitWritesAPlanThatShowAccepts) {
  const LoomResult plan = run_loom(
      "init --model llama3-70b --nodes 8 --tp 8 --pp 4 --schedule interleaved "
      "--num-layers-per-virtual-pipeline-stage 5 --sequence-parallel --use-distributed-optimizer "
      "--recompute-granularity selective --global-batch-size 512");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const auto json = nlohmann::json::parse(plan.out);
  EXPECT_EQ(json["parallel"]["tensor-model-parallel-size"], 8);
  EXPECT_EQ(json["parallel"]["num-layers-per-virtual-pipeline-stage"], 5);
  const LoomResult shown = run_loom("show - --format json", plan.out);
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  const auto derived = nlohmann::json::parse(shown.out);
  EXPECT_EQ(derived["data_parallel_size"], 2);
  EXPECT_EQ(derived["virtual_stages"], 4);
  EXPECT_EQ(derived["microbatches"], 256);
}

TEST(LoomCli, InitPadsTheVocabularyForTensorParallelism) {
  // The plan keeps the tokenizer's vocabulary; `loom show` gives the rows tp 2 trains.
  const LoomResult plan = run_loom("init --model gpt2-124m --tp 2");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const auto model = nlohmann::json::parse(plan.out)["model"];
  EXPECT_EQ(model["vocab-size"], 50257);
  EXPECT_EQ(model["make-vocab-size-divisible-by"], 128);
  EXPECT_FALSE(model.contains("padded-vocab-size"));
  EXPECT_FALSE(model.contains("num-query-groups"));
  const LoomResult shown = run_loom("show - --format json", plan.out);
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(nlohmann::json::parse(shown.out)["padded_vocab_size"], 50432);
  const LoomResult table = run_loom("show -", plan.out);
  EXPECT_THAT(table.out, HasSubstr("vocab 50,257 (padded to 50,432 for tp 2: a multiple of 128 × 2)"));
}

// The new user: a GPT-3 175B plan from `loom init`, then tp changed to 8 in the file.
TEST(LoomCli, InitThenTensorParallelEditedInTheFileShowsAndSimulates) {
  const LoomResult init = run_loom("init --model gpt3-175b");
  ASSERT_EQ(init.exit_code, 0) << init.err;
  auto edited = nlohmann::ordered_json::parse(init.out);
  edited["parallel"]["tensor-model-parallel-size"] = 8;
  const LoomResult shown = run_loom("show - --format json", edited.dump());
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(nlohmann::json::parse(shown.out)["padded_vocab_size"], 51200);
  const LoomResult simulated = run_loom("simulate -", edited.dump());
  EXPECT_EQ(simulated.exit_code, 0) << simulated.err;
  const LoomResult exported = run_loom("export megatron -", edited.dump());
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_THAT(exported.out, HasSubstr("--make-vocab-size-divisible-by 128 \\\n"));
  EXPECT_THAT(exported.out, HasSubstr("pads its 50257 tokens to 51200 rows"));
}

TEST(LoomCli, HeadsOfAGptPlanEditedInTheFileShowAndSimulate) {
  const LoomResult init = run_loom("init --model gpt2-124m");
  ASSERT_EQ(init.exit_code, 0) << init.err;
  auto edited = nlohmann::ordered_json::parse(init.out);
  edited["model"]["num-attention-heads"] = 16;
  const LoomResult shown = run_loom("show -", edited.dump());
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("16 heads (16 query groups)"));
  EXPECT_EQ(run_loom("simulate -", edited.dump()).exit_code, 0);
}

TEST(LoomCli, InitRejectsUnknownPresetsAndValues) {
  const LoomResult preset = run_loom("init --model gpt-5");
  EXPECT_EQ(preset.exit_code, 2);
  EXPECT_THAT(preset.err, HasSubstr("unknown model preset 'gpt-5'"));
  const LoomResult schedule = run_loom("init --model gpt2-124m --schedule zigzag");
  EXPECT_EQ(schedule.exit_code, 2);
  EXPECT_THAT(schedule.err, HasSubstr("--schedule=\"zigzag\" is not valid"));
  const LoomResult profile = run_loom("init --model gpt2-124m --profile tpu-v5");
  EXPECT_EQ(profile.exit_code, 2);
  EXPECT_THAT(profile.err, HasSubstr("unknown profile 'tpu-v5'"));
}

TEST(LoomCli, MissingPlanFileIsBadInput) {
  const LoomResult result = run_loom("show /nonexistent/plan.json");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("cannot read '/nonexistent/plan.json'"));
}

}  // namespace
}  // namespace loom::cli::testing
