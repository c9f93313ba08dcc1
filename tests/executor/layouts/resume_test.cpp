// Resume: 10 steps straight equal 5 steps with a checkpoint every 5, then a run with --resume
// that trains the remaining 5 (steps 6 to 10, the plan's train-iters being 10; no --steps given):
// the losses and gradient norms bit for bit (exact doubles from the JSON lines) and the final
// parameters bit for bit. Checked on one rank, on dp2 with the distributed optimizer (sharded
// optimizer state), on tp2·pp2 (per-stage, per-tensor-rank shards) and on an uneven pp2 split.

#include "layout_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace loom::layout_tests {
namespace {

namespace fs = std::filesystem;

class ResumeMatchesStraightRun : public ::testing::TestWithParam<Layout> {};

TEST_P(ResumeMatchesStraightRun, LossesAndParametersBitForBit) {
  const Layout& layout = GetParam();
  const fs::path plan = make_plan(layout);
  const fs::path straight_model =
      scratch_dir() / ("model_" + layout.name + "_straight.safetensors");
  const fs::path resumed_model = scratch_dir() / ("model_" + layout.name + "_resumed.safetensors");
  const fs::path checkpoints = scratch_dir() / ("checkpoints_" + layout.name);
  const std::string checkpointing =
      "--checkpoint-dir " + quote(checkpoints.string()) + " --checkpoint-every 5";

  const RunOutput straight =
      run_exec(plan, layout.ranks, "--steps 10 --save-model " + quote(straight_model.string()));
  ASSERT_EQ(straight.steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}))
      << straight.process.command;

  const RunOutput first = run_exec(plan, layout.ranks, "--steps 5 " + checkpointing);
  ASSERT_EQ(first.steps, (std::vector<int64_t>{1, 2, 3, 4, 5})) << first.process.command;
  const std::vector<double> straight_first(straight.losses.begin(), straight.losses.begin() + 5);
  const std::vector<double> straight_rest(straight.losses.begin() + 5, straight.losses.end());
  std::vector<std::string> problems = loss_mismatches(straight_first, first.losses, 0);
  EXPECT_TRUE(problems.empty()) << "writing checkpoints changed the losses:"
                                << join_lines(problems);
  problems = loss_mismatches(
      std::vector<double>(straight.grad_norms.begin(), straight.grad_norms.begin() + 5),
      first.grad_norms, 0, "grad norm");
  EXPECT_TRUE(problems.empty()) << "writing checkpoints changed the gradient norms:"
                                << join_lines(problems);
  ASSERT_TRUE(fs::is_directory(checkpoints) && !fs::is_empty(checkpoints))
      << "no checkpoint in " << checkpoints << "; " << first.process.command;

  const RunOutput resumed =
      run_exec(plan, layout.ranks,
               checkpointing + " --resume --save-model " + quote(resumed_model.string()));
  ASSERT_EQ(resumed.steps, (std::vector<int64_t>{6, 7, 8, 9, 10}))
      << "the resumed run should train steps 6 to 10 only; " << resumed.process.command;
  problems = loss_mismatches(straight_rest, resumed.losses, 0, "loss", 6);
  EXPECT_TRUE(problems.empty()) << "the resumed run's losses differ from the straight run's:"
                                << join_lines(problems);
  problems = loss_mismatches(
      std::vector<double>(straight.grad_norms.begin() + 5, straight.grad_norms.end()),
      resumed.grad_norms, 0, "grad norm", 6);
  EXPECT_TRUE(problems.empty())
      << "the resumed run's gradient norms differ from the straight run's:" << join_lines(problems);
  ASSERT_TRUE(fs::exists(resumed_model)) << resumed.process.command;
  problems = parameter_mismatches(straight_model, resumed_model, 0);
  EXPECT_TRUE(problems.empty())
      << "the resumed run's final parameters differ from the straight run's:"
      << join_lines(problems);
}

INSTANTIATE_TEST_SUITE_P(
    Resume, ResumeMatchesStraightRun,
    ::testing::Values(Layout("resume_1rank", 1),
                      Layout("resume_dp2_distributed_optimizer", 2).with_distributed_optimizer(),
                      Layout("resume_tp2_pp2", 4, 2, 2),
                      // A first stage with no layers (only the embedding) saves and loads its shard.
                      Layout("resume_pp2_split_0_4", 2, 1, 2).with_layer_split({0, 4})),
    [](const ::testing::TestParamInfo<Layout>& info) { return info.param.name; });

}  // namespace
}  // namespace loom::layout_tests
