// attention-backend flash under the parallel layouts: the single-rank flash run trains as the
// single-rank unfused reference does (the two kernels differ only in fp32 summation order), and a
// representative set of layouts — tensor, pipeline and data parallel, sequence parallel,
// interleaved, selective and full recompute, and all of them at once — trains with flash as the
// single-rank flash run does, with the tolerances of layouts_test.cpp (layout_support.hpp).

#include "layout_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

namespace loom::layout_tests {
namespace {

namespace fs = std::filesystem;

// The single-rank flash run every flash layout is compared with: kSteps steps and its saved model.
const Reference& flash_reference() {
  static const Reference ref = [] {
    Reference r;
    const fs::path plan = make_plan(Layout("flash_reference", 1).with_attention_backend("flash"));
    r.model = scratch_dir() / "flash_reference.safetensors";
    r.run = run_exec(plan, 1, "--steps " + std::to_string(kSteps) + " --save-model " + quote(r.model.string()));
    if (r.run.steps.size() != size_t(kSteps) || !fs::exists(r.model))
      throw std::runtime_error("the single-rank flash run did not train " + std::to_string(kSteps) +
                               " steps and save its model: " + r.run.process.command);
    return r;
  }();
  return ref;
}

void expect_same_training(const Reference& expected, const RunOutput& run, const fs::path& model,
                          const std::string& what) {
  const std::vector<std::string> losses = loss_mismatches(expected.run.losses, run.losses, kLossRelativeTolerance);
  EXPECT_TRUE(losses.empty()) << what << ": losses differ:" << join_lines(losses);
  const std::vector<std::string> norms =
      loss_mismatches(expected.run.grad_norms, run.grad_norms, kLossRelativeTolerance, "grad norm");
  EXPECT_TRUE(norms.empty()) << what << ": gradient norms differ:" << join_lines(norms);
  ASSERT_TRUE(fs::exists(model)) << what << " wrote no --save-model file; " << run.process.command;
  const std::vector<std::string> parameters = parameter_mismatches(expected.model, model, kParameterTolerance);
  EXPECT_TRUE(parameters.empty()) << what << ": final parameters differ:" << join_lines(parameters);
}

TEST(FlashSingleRank, TrainsAsTheUnfusedReference) {
  const Reference& flash = flash_reference();
  expect_same_training(reference(), flash.run, flash.model, "single-rank flash against single-rank unfused");
  // The comparison above can fail: the two backends do not print the very same numbers (they
  // would if the plan's backend did not reach the kernels).
  EXPECT_NE(flash.run.losses, reference().run.losses) << "flash and unfused printed bit-identical losses";
}

std::vector<Layout> flash_layouts() {
  std::vector<Layout> layouts = {
      Layout("flash_dp2", 2),
      Layout("flash_tp2", 2, 2),
      Layout("flash_tp2_sequence_parallel", 2, 2).with_sequence_parallel(),
      Layout("flash_pp2_1f1b", 2, 1, 2).with_schedule("1f1b"),
      Layout("flash_pp2_interleaved_vpp2", 2, 1, 2).with_schedule("interleaved", 1),
      Layout("flash_recompute_selective_tp2", 2, 2).with_recompute("selective"),
      Layout("flash_recompute_full_tp2", 2, 2).with_recompute("full"),
      Layout("flash_tp2_pp2_dp2_sp_distopt_interleaved", 8, 2, 2)
          .with_schedule("interleaved", 1)
          .with_sequence_parallel()
          .with_distributed_optimizer(),
  };
  for (Layout& layout : layouts) layout = layout.with_attention_backend("flash");
  return layouts;
}

class FlashLayoutMatchesFlashReference : public ::testing::TestWithParam<Layout> {};

TEST_P(FlashLayoutMatchesFlashReference, LossesAndFinalParameters) {
  const Layout& layout = GetParam();
  const fs::path plan = make_plan(layout);
  const fs::path model = scratch_dir() / ("model_" + layout.name + ".safetensors");
  const RunOutput run = run_exec(plan, layout.ranks, "--steps 10 --save-model " + quote(model.string()));
  ASSERT_EQ(run.steps.size(), size_t(kSteps)) << run.process.command;
  expect_same_training(flash_reference(), run, model, layout.name + " against single-rank flash");
}

INSTANTIATE_TEST_SUITE_P(FlashLayouts, FlashLayoutMatchesFlashReference, ::testing::ValuesIn(flash_layouts()),
                         [](const ::testing::TestParamInfo<Layout>& info) { return info.param.name; });

}  // namespace
}  // namespace loom::layout_tests
