#include "reference_check.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace loom::layout_tests {

void expect_layout_matches_reference(const Layout& layout, const Reference& ref, OutlierAllowance allowance) {
  namespace fs = std::filesystem;
  const fs::path model = scratch_dir() / ("model_" + layout.name + ".safetensors");
  const RunOutput run = run_exec(make_plan(layout), layout.ranks, "--steps 10 --save-model " + quote(model.string()));
  ::testing::Test::RecordProperty("wall_s", std::to_string(run.process.wall_s));
  std::vector<int64_t> steps;
  for (int64_t step = 1; step <= kSteps; ++step) steps.push_back(step);
  EXPECT_EQ(run.steps, steps) << run.process.command;
  const std::vector<std::string> losses = loss_mismatches(ref.run.losses, run.losses, kLossRelativeTolerance);
  EXPECT_TRUE(losses.empty()) << layout.name << ": losses differ from the single-rank reference:"
                              << join_lines(losses);
  const std::vector<std::string> norms =
      loss_mismatches(ref.run.grad_norms, run.grad_norms, kLossRelativeTolerance, "grad norm");
  EXPECT_TRUE(norms.empty()) << layout.name << ": gradient norms differ from the single-rank reference:"
                             << join_lines(norms);
  ASSERT_TRUE(fs::exists(model)) << layout.name << " wrote no --save-model file; " << run.process.command;
  const std::vector<std::string> parameters = parameter_mismatches(ref.model, model, kParameterTolerance, allowance);
  EXPECT_TRUE(parameters.empty()) << layout.name << ": final parameters differ from the single-rank reference:"
                                  << join_lines(parameters);
}

}  // namespace loom::layout_tests
