// `loom replan DIR --devices N` as a user meets it, and the attempts of a re-planned run in
// `loom runs` and `loom compare`.
#include "core/model_presets.hpp"
#include "core/store.hpp"
#include "core/store_rows.hpp"
#include "run_loom.hpp"
#include "tests/checkpoint_fixture.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace loom::cli::testing {
namespace {

using loom::testing::CheckpointFixture;
using loom::testing::loom_tiny_four_device_plan;
using ::testing::HasSubstr;
using ::testing::Not;

std::string quoted(const std::filesystem::path& path) {
  return fmt::format("'{}'", path.string());
}

// Exit 2, one line "loom: error: …" containing `message`, and the file at `out` as it was.
void expect_refused(const std::string& arguments, const std::string& message,
                    const std::filesystem::path& out) {
  const std::string before = read_file(out);
  const LoomResult r = run_loom(arguments + " --out " + quoted(out));
  ASSERT_FALSE(r.signalled) << arguments << ": " << r.err;
  EXPECT_EQ(r.exit_code, 2) << arguments << ": " << r.err;
  EXPECT_EQ(r.err.rfind("loom: error: ", 0), 0u) << r.err;
  EXPECT_THAT(r.err, HasSubstr(message)) << arguments;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
  EXPECT_EQ(read_file(out), before) << arguments << " touched " << out;
}

TEST(ReplanCli, FourToThreeDevicesWritesAPlanThatKeepsTheRun) {
  CheckpointFixture fixture("cli_four_to_three");
  fixture.add_step(10, loom_tiny_four_device_plan());
  fixture.add_step(20, loom_tiny_four_device_plan());
  fixture.tear_manifest(20);
  const std::filesystem::path out =
      fixture.dir().parent_path() / (fixture.dir().filename().string() + ".json");
  const LoomResult r =
      run_loom("replan " + quoted(fixture.dir()) + " --devices 3 --out " + quoted(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("loom: warning: skipped step-000020: damaged manifest"));
  EXPECT_THAT(r.out, HasSubstr("(step 10), written by tp1 pp2 dp2 mbs2 on 4 devices"));
  // 3 stages of loom-tiny's 4 layers: an uneven split keeps the global batch (dp 3 could not).
  EXPECT_THAT(r.out, Not(HasSubstr("Note: global batch")));
  EXPECT_THAT(r.out, HasSubstr("Best 10 by step-time"));
  EXPECT_THAT(r.out, HasSubstr("step time"));
  EXPECT_THAT(r.out, HasSubstr("--resume --checkpoint-dir"));
  const nlohmann::json plan = nlohmann::json::parse(read_file(out));
  EXPECT_EQ(plan["training"]["global-batch-size"], 8);
  EXPECT_EQ(plan["parallel"]["pipeline-model-parallel-size"], 3);
  EXPECT_TRUE(plan["parallel"].contains("pipeline-layer-split")) << plan["parallel"].dump();
  EXPECT_EQ(plan["training"]["seed"], 4321);
  EXPECT_EQ(plan["training"]["train-iters"], 40);
  EXPECT_EQ(plan["cluster"]["devices-per-node"], 3);
  EXPECT_EQ(plan["cluster"]["nodes"], 1);
  EXPECT_EQ(plan["model"]["name"], "loom-tiny");
  EXPECT_EQ(run_loom("show " + quoted(out)).exit_code, 0);
  std::filesystem::remove(out);

  const LoomResult json =
      run_loom("replan " + quoted(fixture.dir()) + " --devices 2 --format json --out -");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["cluster"]["devices-per-node"], 2)
      << "--out - prints the plan alone";
  const LoomResult report = run_loom("replan " + quoted(fixture.dir()) +
                                     " --devices 2 --format json --out " + quoted(out));
  ASSERT_EQ(report.exit_code, 0) << report.err;
  const nlohmann::json document = nlohmann::json::parse(report.out);
  EXPECT_EQ(document["format"], "loom-replan");
  EXPECT_EQ(document["global_batch"]["kept"], true);
  EXPECT_EQ(document["global_batch"]["chosen"], 8);
  EXPECT_EQ(document["checkpoint"]["step"], 10);
  EXPECT_EQ(document["skipped"].size(), 1u);
  EXPECT_FALSE(document["search"]["plans"].empty());
  std::filesystem::remove(out);
}

TEST(ReplanCli, BadInputIsOneLineExitTwoAndNothingOverwritten) {
  CheckpointFixture good("cli_bad_good");
  good.add_step(10, loom_tiny_four_device_plan());
  const std::filesystem::path out =
      good.dir().parent_path() / (good.dir().filename().string() + ".json");
  { std::ofstream(out) << "an earlier plan\n"; }
  const std::string dir = quoted(good.dir());

  expect_refused("replan " + dir + " --devices 0", "--devices=0 must be a positive integer", out);
  // 5 devices: no tp divides 4 heads, no pp up to 4 stages divides 5, dp 5 does not divide 8.
  expect_refused("replan " + dir + " --devices 5 --devices-per-node 5 --keep-global-batch",
                 "global batch 8 has no valid plan on 5 devices", out);
  expect_refused("replan " + dir + " --devices 6", "not a whole number of nodes of 4 devices", out);

  CheckpointFixture torn("cli_bad_torn");
  torn.add_step(10, loom_tiny_four_device_plan());
  torn.tear_manifest(10);
  expect_refused("replan " + quoted(torn.dir()) + " --devices 2", "no complete checkpoint in", out);

  CheckpointFixture foreign("cli_bad_foreign");
  foreign.add_step(10, loom_tiny_four_device_plan(), "safetensors-index");
  expect_refused("replan " + quoted(foreign.dir()) + " --devices 2",
                 "is not a Loom checkpoint manifest", out);

  // llama2-7b's weights and AdamW state alone exceed one 80 GB device.
  CheckpointFixture large("cli_bad_large");
  core::Plan big;
  big.model = core::resolve_model("llama2-7b");
  big.cluster.devices_per_node = 8;
  big.cluster.profile = "a100-80gb-dgx";
  big.parallel.tensor_parallel = 8;
  big.parallel.data_parallel = 1;
  big.training.global_batch_size = 8;
  big.validate();
  large.add_step(5, big);
  expect_refused("replan " + quoted(large.dir()) + " --devices 1",
                 "no plan for the checkpoint's model fits", out);

  // The checkpoint is an input: neither a manifest nor anything else inside it is written over.
  const std::string manifest = CheckpointFixture::read(good.manifest(10));
  const LoomResult onto_manifest =
      run_loom("replan " + dir + " --devices 2 --out " + quoted(good.manifest(10)));
  EXPECT_EQ(onto_manifest.exit_code, 2) << onto_manifest.err;
  EXPECT_EQ(onto_manifest.err.find('\n'), onto_manifest.err.size() - 1) << onto_manifest.err;
  EXPECT_EQ(CheckpointFixture::read(good.manifest(10)), manifest);
  const LoomResult inside =
      run_loom("replan " + dir + " --devices 2 --out " + quoted(good.dir() / "new.json"));
  EXPECT_EQ(inside.exit_code, 2) << inside.err;
  EXPECT_FALSE(std::filesystem::exists(good.dir() / "new.json"));
  std::filesystem::remove(out);
}

// A run that failed on 4 devices and went on, re-planned, on 2: `loom runs` counts and lists its
// attempts, `loom compare` sets each attempt beside its own plan's prediction.
TEST(ReplanCli, RunsAndCompareShowEachAttemptWithItsOwnPlan) {
  const std::filesystem::path db =
      std::filesystem::temp_directory_path() /
      ("loom_replan_cli_attempts_" + std::to_string(::getpid()) + ".db");
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);
  {
    core::Store store = core::Store::open(db.string());
    const core::Plan four = loom_tiny_four_device_plan();
    core::Plan two = four;
    two.cluster.devices_per_node = 2;
    two.parallel.pipeline_parallel = 1;
    two.parallel.data_parallel = 2;
    two.validate();
    core::RunRow run;
    run.plan_id = store.insert_plan(core::plan_row(four, "four.json"));
    run.backend = "cpu";
    const int64_t id = store.begin_run(run);
    std::vector<core::StepRow> steps;
    for (int64_t step = 1; step <= 6; ++step)
      steps.push_back({step, 5.0, 0.02, 25000.0, 3e-4, 1.0});
    store.append_steps(id, steps);
    store.finish_attempt(id, core::RunStatus::failed, "rank 3 lost");
    core::RunAttemptRow next;
    next.run_id = id;
    next.plan_id = store.insert_plan(core::plan_row(two, "replan.json"));
    next.start_step = 5;
    store.begin_attempt(next);
    steps.clear();
    for (int64_t step = 5; step <= 10; ++step)
      steps.push_back({step, 4.0, 0.03, 17000.0, 3e-4, 1.0});
    store.append_steps(id, steps);
    store.finish_run(id, core::RunStatus::completed, "");
  }
  const std::string at = " --db " + quoted(db);
  const LoomResult runs = run_loom("runs --attempts" + at);
  ASSERT_EQ(runs.exit_code, 0) << runs.err;
  EXPECT_THAT(runs.out, HasSubstr("attempts"));
  EXPECT_THAT(runs.out, HasSubstr("rank 3 lost"));
  EXPECT_THAT(runs.out, HasSubstr("loom-tiny tp1 pp1 dp2 mbs2"));
  const nlohmann::json listed = nlohmann::json::parse(run_loom("runs --format json" + at).out);
  ASSERT_EQ(listed["runs"][0]["attempts"].size(), 2u);
  EXPECT_EQ(listed["runs"][0]["attempts"][0]["status"], "failed");
  EXPECT_EQ(listed["runs"][0]["attempts"][1]["devices"], 2);
  EXPECT_EQ(listed["runs"][0]["attempts"][1]["start_step"], 5);

  const LoomResult last = run_loom("compare 1" + at);
  ASSERT_EQ(last.exit_code, 0) << last.err;
  EXPECT_THAT(last.out, HasSubstr("Run 1 attempt 2 of 2 (completed, 6 steps"));
  const LoomResult first = run_loom("compare 1 --attempt 1" + at);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_THAT(first.out, HasSubstr("Run 1 attempt 1 of 2 (failed, 4 steps"));
  EXPECT_THAT(first.out, HasSubstr("The attempt ended: rank 3 lost"));
  const nlohmann::json one =
      nlohmann::json::parse(run_loom("compare 1 --attempt 1 --format json" + at).out);
  const nlohmann::json two =
      nlohmann::json::parse(run_loom("compare 1 --attempt 2 --format json" + at).out);
  EXPECT_EQ(one["attempt"], 1);
  EXPECT_NE(one["rows"][0]["predicted"], two["rows"][0]["predicted"])
      << "each attempt has its own plan";
  const LoomResult missing = run_loom("compare 1 --attempt 3" + at);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("run 1 has 2 attempts; there is no attempt 3"));
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);
}

}  // namespace
}  // namespace loom::cli::testing
