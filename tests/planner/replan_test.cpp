// `loom replan`'s core: the newest complete checkpoint's plan, searched again on the devices left.
#include "planner/replan.hpp"

#include "core/error.hpp"
#include "tests/checkpoint_fixture.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace loom::plan {
namespace {

using loom::testing::CheckpointFixture;
using loom::testing::loom_tiny_four_device_plan;
using ::testing::HasSubstr;

ReplanRequest replan_request_for(const CheckpointFixture& fixture, int64_t devices) {
  ReplanRequest request;
  request.checkpoint_dir = fixture.dir();
  request.devices = devices;
  return request;
}

std::string replan_error_of(const ReplanRequest& request) {
  try {
    replan(request);
  } catch (const InvalidInput& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << "replan accepted the request";
  return "";
}

// The written plan may change only the layout, the cluster and the global batch.
void expect_same_run(const core::Plan& old, const core::Plan& replanned, int64_t global_batch) {
  EXPECT_EQ(replanned.model, old.model);
  core::TrainSpec expected = old.training;
  expected.global_batch_size = global_batch;
  EXPECT_EQ(replanned.training, expected);
  EXPECT_EQ(replanned.cluster.profile, old.cluster.profile);
  EXPECT_NO_THROW(replanned.validate());
}

TEST(ReplanTest, FourToThreeDevicesKeepsTheGlobalBatchWithAnUnevenPipeline) {
  CheckpointFixture fixture("four_to_three");
  const core::Plan old = loom_tiny_four_device_plan();
  fixture.add_step(10, old);
  fixture.add_step(20, old);
  const ReplanResult result = replan(replan_request_for(fixture, 3));
  EXPECT_EQ(result.checkpoint.step, 20);
  EXPECT_TRUE(result.checkpoint.skipped.empty());
  // loom-tiny's 4 layers and 4 heads do not divide by 3 and dp 3 does not divide batch 8, but an
  // uneven split of the layers over 3 pipeline stages keeps the batch.
  EXPECT_EQ(result.checkpoint_global_batch, 8);
  EXPECT_EQ(result.global_batch, 8);
  EXPECT_TRUE(result.global_batch_note.empty()) << result.global_batch_note;
  ASSERT_TRUE(result.best.has_value());
  EXPECT_EQ(result.best->cluster.world_size(), 3);
  EXPECT_EQ(result.best->parallel.pipeline_parallel, 3);
  EXPECT_FALSE(result.best->even_layer_split());
  expect_same_run(old, *result.best, 8);
}

TEST(ReplanTest, FourToFiveDevicesTakesTheNearestGlobalBatchAndSaysSo) {
  CheckpointFixture fixture("four_to_five");
  const core::Plan old = loom_tiny_four_device_plan();
  fixture.add_step(10, old);
  ReplanRequest request = replan_request_for(fixture, 5);
  request.devices_per_node = 5;
  const ReplanResult result = replan(request);
  // 5 devices: no tp divides the 4 heads, no pp of at most 4 stages divides 5, and dp 5 does not
  // divide 8.
  EXPECT_EQ(result.checkpoint_global_batch, 8);
  EXPECT_NE(result.global_batch, 8);
  EXPECT_EQ(result.global_batch % 5, 0);
  EXPECT_THAT(result.global_batch_note, HasSubstr("global batch 8 has no valid plan on 5 devices"));
  ASSERT_TRUE(result.best.has_value());
  EXPECT_EQ(result.best->parallel.data_parallel, 5);
  expect_same_run(old, *result.best, result.global_batch);
  EXPECT_FALSE(result.search.top.empty());
}

TEST(ReplanTest, FourToTwoDevicesKeepsTheGlobalBatch) {
  CheckpointFixture fixture("four_to_two");
  const core::Plan old = loom_tiny_four_device_plan();
  fixture.add_step(10, old);
  ReplanRequest request = replan_request_for(fixture, 2);
  request.keep_global_batch = true;
  const ReplanResult result = replan(request);
  EXPECT_EQ(result.global_batch, 8);
  EXPECT_TRUE(result.global_batch_note.empty());
  ASSERT_TRUE(result.best.has_value());
  EXPECT_EQ(result.best->cluster.world_size(), 2);
  expect_same_run(old, *result.best, 8);
}

TEST(ReplanTest, KeepGlobalBatchRefusesWhenNoPlanDividesIt) {
  CheckpointFixture fixture("keep_batch");
  fixture.add_step(10, loom_tiny_four_device_plan());
  ReplanRequest request = replan_request_for(fixture, 5);
  request.devices_per_node = 5;
  request.keep_global_batch = true;
  EXPECT_THAT(replan_error_of(request), HasSubstr("global batch 8 has no valid plan on 5 devices"));
}

TEST(ReplanTest, TornNewestManifestIsSkippedForThePreviousStep) {
  CheckpointFixture fixture("torn");
  fixture.add_step(10, loom_tiny_four_device_plan());
  fixture.add_step(20, loom_tiny_four_device_plan());
  fixture.tear_manifest(20);
  const ReplanResult result = replan(replan_request_for(fixture, 2));
  EXPECT_EQ(result.checkpoint.step, 10);
  ASSERT_EQ(result.checkpoint.skipped.size(), 1u);
  EXPECT_THAT(result.checkpoint.skipped[0], HasSubstr("step-000020: damaged manifest"));
}

TEST(ReplanTest, StepWithAMissingShardOrNoManifestIsSkipped) {
  CheckpointFixture fixture("missing_shard");
  fixture.add_step(10, loom_tiny_four_device_plan());
  fixture.add_step(20, loom_tiny_four_device_plan());
  std::filesystem::remove(fixture.step_dir(20) / "rank-00003.safetensors");
  std::filesystem::create_directories(fixture.step_dir(30));  // a checkpoint never finished
  const CheckpointPlan found = latest_checkpoint_plan(fixture.dir());
  EXPECT_EQ(found.step, 10);
  ASSERT_EQ(found.skipped.size(), 2u);
  EXPECT_THAT(found.skipped[0], HasSubstr("no manifest.json"));
  EXPECT_THAT(found.skipped[1], HasSubstr("shard rank-00003.safetensors is missing"));
}

TEST(ReplanTest, ManifestOfAnotherFormatIsRefusedNotSteppedPast) {
  CheckpointFixture fixture("foreign");
  fixture.add_step(10, loom_tiny_four_device_plan());
  fixture.add_step(20, loom_tiny_four_device_plan(), "other-checkpoint");
  EXPECT_THAT(replan_error_of(replan_request_for(fixture, 2)),
              HasSubstr("is not a Loom checkpoint manifest"));
}

TEST(ReplanTest, ZeroDevicesIsRefused) {
  CheckpointFixture fixture("zero");
  fixture.add_step(10, loom_tiny_four_device_plan());
  EXPECT_THAT(replan_error_of(replan_request_for(fixture, 0)),
              HasSubstr("--devices=0 must be a positive integer"));
}

TEST(ReplanTest, NoCompleteStepIsOneLineNamingWhy) {
  CheckpointFixture fixture("none_complete");
  fixture.add_step(10, loom_tiny_four_device_plan());
  fixture.tear_manifest(10);
  const std::string message = replan_error_of(replan_request_for(fixture, 2));
  EXPECT_THAT(message, HasSubstr("no complete checkpoint in"));
  EXPECT_THAT(message, HasSubstr("step-000010: damaged manifest"));

  CheckpointFixture empty("empty");
  EXPECT_THAT(replan_error_of(replan_request_for(empty, 2)),
              HasSubstr("holds no step-NNNNNN directory"));
  ReplanRequest missing = replan_request_for(empty, 2);
  missing.checkpoint_dir = empty.dir() / "nowhere";
  EXPECT_THAT(replan_error_of(missing), HasSubstr("does not exist"));
}

TEST(ReplanTest, DevicesThatMakeNoWholeNodesAreRefused) {
  CheckpointFixture fixture("nodes");
  fixture.add_step(10, loom_tiny_four_device_plan());
  EXPECT_THAT(replan_error_of(replan_request_for(fixture, 6)),
              HasSubstr("not a whole number of nodes of 4 devices"));
  ReplanRequest request = replan_request_for(fixture, 6);
  request.devices_per_node = 2;
  request.profile = "a100-80gb-dgx";  // the CPU profile has no link between nodes
  const ReplanResult result = replan(request);
  ASSERT_TRUE(result.best.has_value());
  EXPECT_EQ(result.best->cluster.nodes, 3);
  EXPECT_EQ(result.best->cluster.devices_per_node, 2);
  EXPECT_EQ(result.best->cluster.profile, "a100-80gb-dgx");
}

}  // namespace
}  // namespace loom::plan
