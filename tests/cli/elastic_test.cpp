// The pure parts of `loom run --elastic` (cli/elastic_run): how many devices a failure leaves, and
// where a re-planned attempt's plan is written without covering a file already there.
#include "cli/elastic_run.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace loom::cli {
namespace {

namespace fs = std::filesystem;

core::Plan plan_on(int64_t nodes, int64_t devices_per_node) {
  core::Plan plan;
  plan.cluster.nodes = nodes;
  plan.cluster.devices_per_node = devices_per_node;
  return plan;
}

TEST(Elastic, OneNodeLosesOneDeviceSeveralNodesLoseANode) {
  EXPECT_EQ(surviving_devices(plan_on(1, 4)), 3);
  EXPECT_EQ(surviving_devices(plan_on(1, 1)), 0);
  EXPECT_EQ(surviving_devices(plan_on(4, 8)), 24);
}

TEST(Elastic, AttemptPlansLieNextToTheCheckpointsAndNeverCoverAFile) {
  const fs::path dir =
      fs::temp_directory_path() / ("loom_elastic_unit_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "ckpt");
  EXPECT_EQ(attempt_plan_path(dir / "ckpt", 7, 2), dir / "ckpt.run-7.attempt-2.json");
  EXPECT_EQ(attempt_plan_path(dir / "ckpt/", std::nullopt, 3), dir / "ckpt.attempt-3.json");
  std::ofstream(dir / "ckpt.run-7.attempt-2.json") << "the user's";
  EXPECT_EQ(attempt_plan_path(dir / "ckpt", 7, 2), dir / "ckpt.run-7.attempt-2-2.json");
  EXPECT_EQ(attempt_plan_path("ckpt", 1, 2), fs::path("ckpt.run-1.attempt-2.json"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace loom::cli
