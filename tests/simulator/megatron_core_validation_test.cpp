// The second published set: current Megatron-Core / NeMo pre-training on H100. The rows compiled
// into Loom are those of the cited data file, and each is simulated with its recipe's settings.

#include "simulator/megatron_core_validation.hpp"

#include "core/profile.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace loom::sim {
namespace {

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream stream(line);
  for (std::string cell; std::getline(stream, cell, ',');) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

TEST(MegatronCoreValidation, RowsAreThoseOfTheCitedDataFile) {
  std::ifstream file(LOOM_SIMULATOR_DATA_DIR "/megatron_core_h100.csv");
  ASSERT_TRUE(file) << "cannot read " << LOOM_SIMULATOR_DATA_DIR "/megatron_core_h100.csv";
  std::string line;
  ASSERT_TRUE(std::getline(file, line));
  const std::vector<std::string> header = split(line);
  const auto column = [&](std::string_view name) {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return i;
    ADD_FAILURE() << "no column " << name;
    return size_t(0);
  };
  size_t index = 0;
  const std::vector<CurrentMegatronRun>& runs = megatron_core_h100_runs();
  while (std::getline(file, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> cells = split(line);
    ASSERT_LT(index, runs.size());
    const CurrentMegatronRun& run = runs[index++];
    SCOPED_TRACE(line);
    EXPECT_EQ(cells[column("source_id")], run.source_id);
    EXPECT_EQ(cells[column("model")], run.model);
    EXPECT_EQ(std::stoll(cells[column("sequence_length")]), run.seq_length);
    EXPECT_EQ(std::stoll(cells[column("gpus")]), run.devices);
    EXPECT_EQ(std::stoll(cells[column("global_batch_size")]), run.global_batch_size);
    EXPECT_EQ(std::stoll(cells[column("micro_batch_size")]), run.micro_batch_size);
    EXPECT_EQ(std::stoll(cells[column("tp")]), run.tensor_parallel);
    EXPECT_EQ(std::stoll(cells[column("pp")]), run.pipeline_parallel);
    EXPECT_EQ(std::stoll(cells[column("cp")]), 1);  // Loom expresses no context parallelism
    EXPECT_EQ(std::stoll(cells[column("vp")]), run.virtual_stages);
    EXPECT_EQ(cells[column("precision")], "bf16");
    EXPECT_DOUBLE_EQ(std::stod(cells[column("step_time_s")]), run.step_time_s);
    // The source's tokens/s is seq × batch / step time, rounded to a token.
    EXPECT_NEAR(std::stod(cells[column("tokens_per_s_total")]), run.tokens_per_s(), 1.0);
  }
  EXPECT_EQ(index, runs.size());
}

TEST(MegatronCoreValidation, EachRowIsSimulatedWithItsRecipe) {
  const core::Profile h100 = core::resolve_profile("h100-80gb-dgx");
  const CurrentMegatronReport report = validate_megatron_core_h100(h100);
  ASSERT_EQ(report.rows.size(), megatron_core_h100_runs().size());
  double total = 0;
  for (const CurrentMegatronRow& row : report.rows) {
    SCOPED_TRACE(::testing::Message() << row.published.source_id << " on " << row.published.devices);
    const core::ParallelPlan& p = row.plan.parallel;
    EXPECT_EQ(row.plan.cluster.world_size(), row.published.devices);
    EXPECT_EQ(row.plan.virtual_stages(), row.published.virtual_stages);
    EXPECT_EQ(p.attention_backend, core::AttentionBackend::flash);
    EXPECT_TRUE(p.overlap_grad_reduce && p.overlap_param_gather && p.tp_comm_overlap && p.sequence_parallel &&
                p.distributed_optimizer);
    EXPECT_TRUE(row.prediction.fits);
    // The overlaps hide communication, and what stays exposed is less than what is on the links.
    EXPECT_GT(row.prediction.breakdown.dp_comm_hidden_s, 0.0);
    EXPECT_GT(row.prediction.breakdown.tp_comm_hidden_s, 0.0);
    EXPECT_NEAR(row.error_fraction, row.prediction.tokens_per_s / row.published.tokens_per_s() - 1.0, 1e-12);
    total += std::abs(row.error_fraction);
  }
  EXPECT_NEAR(report.mean_absolute_percentage_error, 100.0 * total / double(report.rows.size()), 1e-9);
  EXPECT_GT(report.mean_absolute_percentage_error, 0.0);
}

}  // namespace
}  // namespace loom::sim
