// Megatron-Core's parallel settings (attention-backend, overlap-grad-reduce, overlap-param-gather,
// tp-comm-overlap, ddp-bucket-size) through the command line: `loom init` writes what current
// Megatron-Core runs, `loom show` reports the settings and which of them an older plan lacked,
// `loom export megatron` passes them on under Megatron's own flags.

#include "run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace loom::cli::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::vector<std::string> kNewKeys = {"attention-backend", "overlap-grad-reduce", "overlap-param-gather",
                                           "tp-comm-overlap", "ddp-bucket-size"};

nlohmann::ordered_json init_plan(const std::string& arguments) {
  const LoomResult init = run_loom("init --model gpt2-124m " + arguments);
  EXPECT_EQ(init.exit_code, 0) << init.err;
  return nlohmann::ordered_json::parse(init.out);
}

TEST(MegatronCoreSettings, AnOlderPlanReadsAsUnfusedWithoutOverlapAndShowSaysWhichKeysWereAbsent) {
  const std::string older = fixture_path("good/older-plan-pinned-padded-vocab-size.json");
  // The fixture must predate the keys, or this test would prove nothing.
  const auto document = nlohmann::json::parse(read_file(older));
  for (const std::string& key : kNewKeys) ASSERT_FALSE(document["parallel"].contains(key)) << key;

  const LoomResult table = run_loom("show '" + older + "'");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("attention-backend unfused"));
  EXPECT_THAT(table.out, HasSubstr("overlap-grad-reduce off · overlap-param-gather off · tp-comm-overlap off"));
  EXPECT_THAT(table.out, HasSubstr("\n  note      the plan has no attention-backend, overlap-grad-reduce, "
                                   "overlap-param-gather, tp-comm-overlap, ddp-bucket-size"));
  EXPECT_THAT(table.out, HasSubstr("the old behaviour is assumed: unfused attention, no overlap\n"));

  const LoomResult json = run_loom("show '" + older + "' --format json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto settings = nlohmann::json::parse(json.out)["megatron_core_settings"];
  EXPECT_EQ(settings["attention-backend"], "unfused");
  EXPECT_EQ(settings["overlap-grad-reduce"], false);
  EXPECT_EQ(settings["overlap-param-gather"], false);
  EXPECT_EQ(settings["tp-comm-overlap"], false);
  EXPECT_TRUE(settings["ddp-bucket-size"].is_null());
  EXPECT_TRUE(settings["grad_bucket_parameters"].is_null()) << "no overlap: one bucket of all gradients";
  EXPECT_EQ(settings["absent_keys"], nlohmann::json(kNewKeys));
}

TEST(MegatronCoreSettings, OnlyTheKeysAPlanLacksAreNamed) {
  auto plan = init_plan("--tp 2 --sequence-parallel");
  plan["parallel"].erase("tp-comm-overlap");
  plan["parallel"].erase("ddp-bucket-size");
  const LoomResult table = run_loom("show -", plan.dump());
  ASSERT_EQ(table.exit_code, 0) << table.err;
  // tp-comm-overlap reads as off although `init` would have turned it on with sequence parallel.
  EXPECT_THAT(table.out, HasSubstr("tp-comm-overlap off"));
  EXPECT_THAT(table.out, HasSubstr("the plan has no tp-comm-overlap, ddp-bucket-size (as plans written before Loom "
                                   "knew them); the old behaviour is assumed: no overlap, Megatron's default bucket "
                                   "size\n"));
  const LoomResult json = run_loom("show - --format json", plan.dump());
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto settings = nlohmann::json::parse(json.out)["megatron_core_settings"];
  EXPECT_EQ(settings["absent_keys"], nlohmann::json({"tp-comm-overlap", "ddp-bucket-size"}));
  EXPECT_EQ(settings["grad_bucket_parameters"], 40000000);  // max(40M, 1M × dp 4)
}

TEST(MegatronCoreSettings, APlanWithEveryKeyGetsNoNote) {
  const LoomResult table = run_loom("show -", init_plan("").dump());
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, Not(HasSubstr("note ")));
  const LoomResult json = run_loom("show - --format json", init_plan("").dump());
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_TRUE(nlohmann::json::parse(json.out)["megatron_core_settings"]["absent_keys"].empty());
}

TEST(MegatronCoreSettings, ShowGivesTheBucketSizeMegatronUses) {
  // 64 devices at tp 1: dp 64, so Megatron's default is 1M × 64 parameters, above its 40M floor.
  const LoomResult table = run_loom("show -", init_plan("--nodes 8 --global-batch-size 512").dump());
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("ddp-bucket-size 64,000,000 parameters (Megatron default: max(40M, 1M × dp))"));
  const LoomResult given = run_loom("show -", init_plan("--ddp-bucket-size 25000000").dump());
  ASSERT_EQ(given.exit_code, 0) << given.err;
  EXPECT_THAT(given.out, HasSubstr("ddp-bucket-size 25,000,000 parameters\n"));
  const LoomResult none = run_loom("show -", init_plan("--no-overlap-grad-reduce").dump());
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_THAT(none.out, HasSubstr("ddp-bucket-size none: without overlap-grad-reduce all gradients reduce as one "
                                  "bucket"));
}

TEST(MegatronCoreSettings, InitDefaultsToWhatMegatronCoreRuns) {
  const auto plain = init_plan("")["parallel"];
  EXPECT_EQ(plain["attention-backend"], "flash");
  EXPECT_EQ(plain["overlap-grad-reduce"], true);
  EXPECT_EQ(plain["overlap-param-gather"], false);  // no distributed optimizer to gather for
  EXPECT_EQ(plain["tp-comm-overlap"], false);       // no sequence parallelism to split
  EXPECT_TRUE(plain["ddp-bucket-size"].is_null());

  const auto full = init_plan("--tp 2 --sequence-parallel --use-distributed-optimizer")["parallel"];
  EXPECT_EQ(full["overlap-param-gather"], true);
  EXPECT_EQ(full["tp-comm-overlap"], true);
}

TEST(MegatronCoreSettings, InitTurnsEachOffOrChoosesIt) {
  const auto off = init_plan(
      "--tp 2 --sequence-parallel --use-distributed-optimizer --attention-backend unfused --no-overlap-grad-reduce "
      "--no-tp-comm-overlap")["parallel"];
  EXPECT_EQ(off["attention-backend"], "unfused");
  EXPECT_EQ(off["overlap-grad-reduce"], false);
  // Its default follows overlap-grad-reduce, which it needs, rather than failing the plan.
  EXPECT_EQ(off["overlap-param-gather"], false);
  EXPECT_EQ(off["tp-comm-overlap"], false);
  const auto gather_off = init_plan("--use-distributed-optimizer --no-overlap-param-gather")["parallel"];
  EXPECT_EQ(gather_off["overlap-grad-reduce"], true);
  EXPECT_EQ(gather_off["overlap-param-gather"], false);
  EXPECT_EQ(init_plan("--ddp-bucket-size 25000000")["parallel"]["ddp-bucket-size"], 25000000);
  // The last of a flag and its negation wins, as for every CLI11 flag.
  EXPECT_EQ(init_plan("--no-overlap-grad-reduce --overlap-grad-reduce")["parallel"]["overlap-grad-reduce"], true);
}

TEST(MegatronCoreSettings, InitHelpSaysWhatEachSettingDoes) {
  const LoomResult help = run_loom("init --help");
  ASSERT_EQ(help.exit_code, 0) << help.err;
  for (const char* text : {"--attention-backend", "--no-overlap-grad-reduce", "--no-overlap-param-gather",
                           "--no-tp-comm-overlap", "--ddp-bucket-size", "FlashAttention", "needs --sequence-parallel",
                           "needs --use-distributed-optimizer and --overlap-grad-reduce",
                           "max(40,000,000, 1,000,000 × data-parallel size)"})
    EXPECT_THAT(help.out, HasSubstr(text));
}

TEST(MegatronCoreSettings, ExportPassesEachSettingUnderMegatronsFlag) {
  const LoomResult all = run_loom("export megatron -", init_plan("--tp 2 --sequence-parallel --use-distributed-optimizer "
                                                                 "--ddp-bucket-size 25000000")
                                                           .dump());
  ASSERT_EQ(all.exit_code, 0) << all.err;
  for (const char* line : {"--attention-backend flash \\\n", "--overlap-grad-reduce \\\n",
                           "--overlap-param-gather \\\n", "--tp-comm-overlap \\\n", "--ddp-bucket-size 25000000 \\\n"})
    EXPECT_THAT(all.out, HasSubstr(line));
  EXPECT_THAT(all.out, HasSubstr("# tp-comm-overlap: Megatron-Core sets it up with Transformer Engine's userbuffers"));

  const LoomResult older = run_loom("export megatron '" + fixture_path("good/older-plan-pinned-padded-vocab-size.json") + "'");
  ASSERT_EQ(older.exit_code, 0) << older.err;
  // Megatron-Core's own default is `auto`; an older plan meant unfused attention, so it says so.
  EXPECT_THAT(older.out, HasSubstr("--attention-backend unfused \\\n"));
  for (const char* absent : {"--overlap-grad-reduce", "--overlap-param-gather", "--tp-comm-overlap", "--ddp-bucket-size",
                             "Transformer Engine"})
    EXPECT_THAT(older.out, Not(HasSubstr(absent)));
}

}  // namespace
}  // namespace loom::cli::testing
