// Every parallel layout of the list trains the same model on the same data as the
// single-rank reference: loss and gradient norm at each of 10 steps within 1e-5 relative, every
// final parameter within 1e-5 · max(1, |reference|) (fp32, --threads 1). Plus the controls that
// show these comparisons can fail, and the saved model's Hugging Face GPT-2 names.

#include "layout_support.hpp"
#include "reference_check.hpp"

#include "executor/checkpoint/safetensors.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <numeric>

namespace loom::layout_tests {
namespace {

namespace fs = std::filesystem;

std::vector<int64_t> steps_from(int64_t first, int64_t last) {
  std::vector<int64_t> steps(size_t(last - first + 1));
  std::iota(steps.begin(), steps.end(), first);
  return steps;
}

// The list. Recompute runs on tp2 (its full recompute re-runs the forward's tensor-
// parallel collectives) and on one rank; one extra pipeline case recomputes under 1F1B, and one
// 8-rank case combines everything.
std::vector<Layout> layouts() {
  std::vector<Layout> all;
  auto add = [&](const Layout& l) { all.push_back(l); };
  add(Layout("dp2", 2));
  add(Layout("tp2", 2, 2));
  add(Layout("tp2_sequence_parallel", 2, 2).with_sequence_parallel());
  add(Layout("pp2_gpipe", 2, 1, 2).with_schedule("gpipe"));
  add(Layout("pp2_1f1b", 2, 1, 2).with_schedule("1f1b"));
  add(Layout("pp2_interleaved_vpp2", 2, 1, 2).with_schedule("interleaved", 1));
  add(Layout("dp2_distributed_optimizer", 2).with_distributed_optimizer());
  add(Layout("recompute_selective_1rank", 1).with_recompute("selective"));
  add(Layout("recompute_full_1rank", 1).with_recompute("full"));
  add(Layout("recompute_selective_tp2", 2, 2).with_recompute("selective"));
  add(Layout("recompute_full_tp2", 2, 2).with_recompute("full"));
  add(Layout("pp2_1f1b_recompute_full", 2, 1, 2).with_recompute("full"));
  add(Layout("tp2_pp2_dp2", 8, 2, 2));
  add(Layout("tp2_pp2_dp2_sp_distopt_interleaved", 8, 2, 2)
          .with_schedule("interleaved", 1)
          .with_sequence_parallel()
          .with_distributed_optimizer());
  return all;
}

class LayoutMatchesReference : public ::testing::TestWithParam<Layout> {};

TEST_P(LayoutMatchesReference, LossesAndFinalParameters) {
  expect_layout_matches_reference(GetParam(), reference());
}

INSTANTIATE_TEST_SUITE_P(Layouts, LayoutMatchesReference, ::testing::ValuesIn(layouts()),
                         [](const ::testing::TestParamInfo<Layout>& info) {
                           return info.param.name;
                         });

// The saved model has exactly the names and shapes of Hugging Face's GPT-2 checkpoints
// (linear weights [in, out]; the output layer tied to wte, so no lm_head), in F32.
TEST(SavedModel, HasGpt2NamesAndShapes) {
  const exec::SafeTensorsFile file = exec::read_safetensors(reference().model.string());
  const int64_t h = 64, ffn = 256, vocab = 256, seq = 32;
  std::map<std::string, std::vector<int64_t>> expected = {{"wte.weight", {vocab, h}},
                                                          {"wpe.weight", {seq, h}},
                                                          {"ln_f.weight", {h}},
                                                          {"ln_f.bias", {h}}};
  for (int i = 0; i < 4; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    expected[p + "ln_1.weight"] = {h};
    expected[p + "ln_1.bias"] = {h};
    expected[p + "attn.c_attn.weight"] = {h, 3 * h};
    expected[p + "attn.c_attn.bias"] = {3 * h};
    expected[p + "attn.c_proj.weight"] = {h, h};
    expected[p + "attn.c_proj.bias"] = {h};
    expected[p + "ln_2.weight"] = {h};
    expected[p + "ln_2.bias"] = {h};
    expected[p + "mlp.c_fc.weight"] = {h, ffn};
    expected[p + "mlp.c_fc.bias"] = {ffn};
    expected[p + "mlp.c_proj.weight"] = {ffn, h};
    expected[p + "mlp.c_proj.bias"] = {h};
  }
  std::map<std::string, std::vector<int64_t>> actual;
  for (const auto& [name, tensor] : file.tensors) {
    actual[name] = tensor.shape;
    EXPECT_EQ(tensor.dtype, "F32") << name;
  }
  EXPECT_EQ(actual, expected);
}

// An untied output layer (lm_head, on the last stage) across tensor and pipeline ranks trains as
// on one rank. Untied, the first stage alone holds wte: it once all-reduced wte's gradient with
// the last stage, which never answered, and the run hung.
TEST(UntiedOutputLayer, Tp2Pp2MatchesOneRank) {
  const fs::path single_model = scratch_dir() / "model_untied_single.safetensors";
  const fs::path split_model = scratch_dir() / "model_untied_tp2_pp2.safetensors";
  const RunOutput single = run_exec(make_plan(Layout("untied_single", 1).with_untied_output_layer()), 1,
                                    "--steps 3 --save-model " + quote(single_model.string()));
  const RunOutput split =
      run_exec(make_plan(Layout("untied_tp2_pp2", 4, 2, 2).with_untied_output_layer()), 4,
               "--steps 3 --save-model " + quote(split_model.string()));
  ASSERT_EQ(single.steps, steps_from(1, 3));
  ASSERT_EQ(split.steps, steps_from(1, 3));
  const std::vector<std::string> losses =
      loss_mismatches(single.losses, split.losses, kLossRelativeTolerance);
  EXPECT_TRUE(losses.empty()) << join_lines(losses);
  const std::vector<std::string> norms =
      loss_mismatches(single.grad_norms, split.grad_norms, kLossRelativeTolerance, "grad norm");
  EXPECT_TRUE(norms.empty()) << join_lines(norms);
  EXPECT_TRUE(exec::read_safetensors(single_model.string()).contains("lm_head.weight"));
  const std::vector<std::string> parameters =
      parameter_mismatches(single_model, split_model, kParameterTolerance);
  EXPECT_TRUE(parameters.empty()) << join_lines(parameters);
}

// Controls: the comparisons above can fail.
// Another seed (other initial weights and other batches) gives other losses and parameters.
TEST(Controls, AnotherSeedFailsBothComparisons) {
  const Reference& ref = reference();
  const fs::path plan = make_plan(Layout("control_seed", 1).with_seed(4321));
  const fs::path model = scratch_dir() / "model_control_seed.safetensors";
  const RunOutput run = run_exec(plan, 1, "--steps 10 --save-model " + quote(model.string()));
  EXPECT_EQ(run.losses.size(), size_t(kSteps));
  EXPECT_FALSE(loss_mismatches(ref.run.losses, run.losses, kLossRelativeTolerance).empty());
  EXPECT_FALSE(parameter_mismatches(ref.model, model, kParameterTolerance).empty());
}

// The parameter tolerance is tight enough to see one step's update (at the final, smallest
// learning rate); and a single-rank run repeats the reference bit for bit.
TEST(Controls, OneStepShortFailsTheParameterComparison) {
  const Reference& ref = reference();
  const fs::path plan = make_plan(Layout("control_nine_steps", 1));
  const fs::path model = scratch_dir() / "model_control_nine_steps.safetensors";
  const RunOutput run = run_exec(plan, 1, "--steps 9 --save-model " + quote(model.string()));
  ASSERT_EQ(run.steps, steps_from(1, 9));
  const std::vector<double> first_nine(ref.run.losses.begin(), ref.run.losses.begin() + 9);
  const std::vector<std::string> repeated = loss_mismatches(first_nine, run.losses, 0);
  EXPECT_TRUE(repeated.empty()) << "a repeated single-rank run differs:" << join_lines(repeated);
  EXPECT_FALSE(parameter_mismatches(ref.model, model, kParameterTolerance).empty());
}

// --init-from: the reference's final model, loaded into tp2·pp2 shards and gathered again by
// --save-model without training, comes back bit for bit; and training on from it gives the
// same losses on one rank and on tp2·pp2, lower than the fresh model's.
TEST(InitFrom, RoundTripThroughShardsIsExact) {
  const Reference& ref = reference();
  const fs::path plan = make_plan(Layout("init_from_tp2_pp2", 4, 2, 2));
  const fs::path model = scratch_dir() / "model_init_from_round_trip.safetensors";
  const RunOutput run = run_exec(plan, 4,
                                 "--steps 0 --init-from " + quote(ref.model.string()) +
                                     " --save-model " + quote(model.string()),
                                 false);
  ASSERT_EQ(run.process.exit_code, 0) << run.process.command << "\n" << run.process.err;
  EXPECT_TRUE(run.steps.empty()) << "--steps 0 trained";
  ASSERT_TRUE(fs::exists(model));
  const std::vector<std::string> problems = parameter_mismatches(ref.model, model, 0);
  EXPECT_TRUE(problems.empty()) << join_lines(problems);
}

TEST(InitFrom, LayoutsTrainOnAlike) {
  const Reference& ref = reference();
  const std::string extra = "--steps 3 --init-from " + quote(ref.model.string());
  const RunOutput single = run_exec(make_plan(Layout("init_from_single", 1)), 1, extra);
  const RunOutput split = run_exec(make_plan(Layout("init_from_tp2_pp2", 4, 2, 2)), 4, extra);
  ASSERT_EQ(single.steps, steps_from(1, 3));
  ASSERT_EQ(split.steps, steps_from(1, 3));
  const std::vector<std::string> problems =
      loss_mismatches(single.losses, split.losses, kLossRelativeTolerance);
  EXPECT_TRUE(problems.empty()) << join_lines(problems);
  const std::vector<std::string> norms =
      loss_mismatches(single.grad_norms, split.grad_norms, kLossRelativeTolerance, "grad norm");
  EXPECT_TRUE(norms.empty()) << join_lines(norms);
  // Step 1's batch is the reference's step 1 batch: the trained weights must do better on it.
  EXPECT_LT(single.losses[0], ref.run.losses[0] - 0.1)
      << "--init-from seems not to have loaded the weights";
}

}  // namespace
}  // namespace loom::layout_tests
