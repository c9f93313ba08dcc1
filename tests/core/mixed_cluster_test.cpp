// Mixed clusters (issue 23): several device groups, placed in order along the pipeline. Their JSON
// form, its refusals, and which pipeline stage lands on which group.

#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace loom::core {
namespace {

using ::testing::HasSubstr;

ClusterSpec mixed_cluster(std::vector<DeviceGroup> groups) {
  ClusterSpec cluster;
  cluster.groups = std::move(groups);
  cluster.summarise_groups();
  return cluster;
}

// llama2-7b on one A100 node then one H100 node: tp 2 × dp 2 per stage, pp 4.
Plan mixed_plan() {
  Plan plan;
  plan.model = find_model_preset("llama2-7b").spec;
  plan.training.global_batch_size = 64;
  plan.cluster = mixed_cluster({{1, 8, "a100-80gb-dgx"}, {1, 8, "h100-80gb-dgx"}});
  plan.parallel.tensor_parallel = 2;
  plan.parallel.pipeline_parallel = 4;
  plan.parallel.micro_batch_size = 2;
  derive_data_parallel(plan);
  return plan;
}

Json mixed_cluster_json() {
  return Json::parse(R"({"groups": [{"nodes": 2, "devices-per-node": 8, "profile": "a100-80gb-dgx"},
                                    {"nodes": 1, "devices-per-node": 8, "profile": "h100-80gb-dgx"}],
                         "price-per-device-hour": null})");
}

std::string cluster_refusal(const Json& json) {
  try {
    cluster_from_json(json).validate();
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "(valid)";
}

TEST(MixedCluster, GroupsSummariseTheCluster) {
  const ClusterSpec cluster = cluster_from_json(mixed_cluster_json());
  ASSERT_TRUE(cluster.mixed());
  EXPECT_EQ(cluster.nodes, 3);
  EXPECT_EQ(cluster.devices_per_node, 8);
  EXPECT_EQ(cluster.profile, "a100-80gb-dgx");
  EXPECT_EQ(cluster.world_size(), 24);
  EXPECT_EQ(cluster.device_groups().size(), 2u);
  EXPECT_EQ(cluster.group_of_rank(0), 0);
  EXPECT_EQ(cluster.group_of_rank(15), 0);
  EXPECT_EQ(cluster.group_of_rank(16), 1);
  EXPECT_EQ(cluster.group_of_rank(23), 1);
  EXPECT_NO_THROW(cluster.validate());
  // A cluster of one kind is its own one group.
  const ClusterSpec plain{2, 8, "h100-80gb-dgx", std::nullopt, {}};
  EXPECT_FALSE(plain.mixed());
  EXPECT_EQ(plain.device_groups(), (std::vector<DeviceGroup>{{2, 8, "h100-80gb-dgx"}}));
  EXPECT_EQ(plain.group_of_rank(9), 0);
}

TEST(MixedCluster, RoundTripsAsGroupsOnly) {
  const ClusterSpec cluster = cluster_from_json(mixed_cluster_json());
  const Json written = to_json(cluster);
  EXPECT_EQ(written, mixed_cluster_json());
  EXPECT_FALSE(written.contains("nodes"));
  EXPECT_EQ(cluster_from_json(written), cluster);
  const Plan plan = mixed_plan();
  plan.validate();
  EXPECT_EQ(read_plan_text(to_json(plan).dump(2), "test"), plan);
}

TEST(MixedCluster, ProfilesResolvePerGroup) {
  const std::vector<Profile> profiles = resolve_group_profiles(mixed_plan().cluster);
  ASSERT_EQ(profiles.size(), 2u);
  EXPECT_EQ(profiles[0].name, resolve_profile("a100-80gb-dgx").name);
  EXPECT_EQ(profiles[1].name, resolve_profile("h100-80gb-dgx").name);
  EXPECT_EQ(resolve_group_profiles(ClusterSpec{1, 8, "h100-80gb-dgx", std::nullopt, {}}).size(), 1u);
}

TEST(MixedCluster, StagesLandOnGroupsInPipelineOrder) {
  const Plan plan = mixed_plan();
  // 4 ranks per stage: stages 0-1 on the A100 node, 2-3 on the H100 node.
  EXPECT_EQ(plan.pipeline_rank_groups(), (std::vector<int64_t>{0, 0, 1, 1}));
  Plan uneven = plan;
  uneven.cluster = mixed_cluster({{1, 8, "a100-80gb-dgx"}, {3, 8, "h100-80gb-dgx"}});
  derive_data_parallel(uneven);  // 32 devices: dp 4, 8 ranks per stage
  uneven.validate();
  EXPECT_EQ(uneven.pipeline_rank_groups(), (std::vector<int64_t>{0, 1, 1, 1}));
}

TEST(MixedClusterRefusal, OneGroupIsNotMixed) {
  Json json = mixed_cluster_json();
  json["groups"].erase(1);
  EXPECT_THAT(cluster_refusal(json), HasSubstr("cluster.groups has 1 group; a mixed cluster lists 2 or more"));
  json["groups"] = Json::array();
  EXPECT_THAT(cluster_refusal(json), HasSubstr("is empty; list 2 or more device groups"));
}

TEST(MixedClusterRefusal, GroupsMustAgreeOnDevicesPerNode) {
  Json json = mixed_cluster_json();
  json["groups"][1]["devices-per-node"] = 4;
  EXPECT_THAT(cluster_refusal(json),
              HasSubstr("cluster.groups[1].devices-per-node=4 differs from cluster.groups[0].devices-per-node=8"));
}

TEST(MixedClusterRefusal, GroupsAreNotGivenBesideNodes) {
  for (const char* key : {"nodes", "devices-per-node", "profile"}) {
    Json json = mixed_cluster_json();
    json[key] = std::string(key) == "profile" ? Json("h100-80gb-dgx") : Json(8);
    EXPECT_THAT(cluster_refusal(json), HasSubstr("cannot be given beside")) << key;
  }
}

TEST(MixedClusterRefusal, GroupsAreCheckedField) {
  Json json = mixed_cluster_json();
  json["groups"][0]["nodes"] = 0;
  EXPECT_THAT(cluster_refusal(json), HasSubstr("cluster.groups[0].nodes=0 must be an integer from 1"));
  json = mixed_cluster_json();
  json["groups"][1].erase("profile");
  EXPECT_THAT(cluster_refusal(json), HasSubstr("profile"));
  json = mixed_cluster_json();
  json["groups"][0]["nodes"] = int64_t(1) << 20;
  json["groups"][1]["nodes"] = int64_t(1) << 20;
  EXPECT_THAT(cluster_refusal(json), HasSubstr("cluster.groups hold 2097152 nodes in all, more than the supported"));
  json = mixed_cluster_json();
  json["groups"][1]["gpus"] = 8;
  EXPECT_THAT(cluster_refusal(json), HasSubstr("gpus"));
}

TEST(MixedClusterRefusal, TensorOrDataParallelGroupMayNotStraddleTwoKindsOfDevice) {
  // 8 A100 + 16 H100, tp 4 × dp 3 = 12 ranks per stage: stage 0 would hold 8 A100s and 4 H100s.
  Plan plan = mixed_plan();
  plan.cluster = mixed_cluster({{1, 8, "a100-80gb-dgx"}, {2, 8, "h100-80gb-dgx"}});
  plan.training.global_batch_size = 96;
  plan.parallel.tensor_parallel = 4;
  plan.parallel.pipeline_parallel = 2;
  derive_data_parallel(plan);
  ASSERT_EQ(plan.parallel.data_parallel, 3);
  try {
    plan.validate();
    ADD_FAILURE() << "a stage straddling two groups was accepted";
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("cluster.groups[0] (1 node(s) × 8 devices, profile a100-80gb-dgx) holds ranks 0–7"));
    EXPECT_THAT(e.what(), HasSubstr("a tensor- or data-parallel group would straddle two kinds of device"));
  }
  // tp 8 × dp 1 per stage, pp 3: each stage on one kind.
  plan.parallel.tensor_parallel = 8;
  plan.parallel.pipeline_parallel = 3;
  plan.model.num_layers = 30;
  derive_data_parallel(plan);
  EXPECT_NO_THROW(plan.validate());
  EXPECT_EQ(plan.pipeline_rank_groups(), (std::vector<int64_t>{0, 1, 1}));
}

}  // namespace
}  // namespace loom::core
