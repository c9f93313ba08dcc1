// overlap-grad-reduce and overlap-param-gather (Megatron-Core's overlapped data parallelism) in
// every data-parallel layout: with a bucket size of 12,000 parameters (a layer of the test model
// holds about 50,000: several buckets per layer, some cut by the distributed optimizer's shard
// boundary), each layout
// - trains as the single-rank reference does (the tolerances of layout_support.hpp), and
// - bit for bit as the same layout without overlap: losses and gradient norms as exact doubles,
//   final parameters bit-identical. Overlap changes when each bucket is reduced, not what is
//   summed: the tensor-parallel and tied-embedding sums still come before a bucket's reduction,
//   and over 2 data-parallel ranks a sum is the same whichever order MPI adds in (a + b = b + a
//   in IEEE arithmetic). Over 4 ranks MPI's algorithms may add in another order for a bucket than
//   for the whole buffer, so dp4 is held to the reference's tolerances against its run without
//   overlap.
// And a checkpoint written while overlap-param-gather's gathers are pending holds the gathered
// values: a resumed run ends bit-identical to the straight one.

#include "layout_support.hpp"

#include "core/json_reader.hpp"  // core::Json
#include "core/plan_json.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace loom::layout_tests {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kBucketParameters = 12000;

struct OverlapCase {
  Layout layout;
  bool param_gather = false;     // overlap-param-gather (needs the distributed optimizer)
  bool bit_identical = true;     // to the same layout without overlap (see above)
};

void PrintTo(const OverlapCase& c, std::ostream* os) { *os << c.layout.name; }

std::vector<OverlapCase> cases() {
  return {
      {Layout("dp2", 2)},
      {Layout("dp4", 4), false, false},
      {Layout("dp2_tp2_sequence_parallel", 4, 2).with_sequence_parallel()},
      {Layout("dp2_pp2_1f1b", 4, 1, 2)},
      {Layout("dp2_pp2_interleaved_vpp2", 4, 1, 2).with_schedule("interleaved", 1)},
      {Layout("dp2_distributed_optimizer", 2).with_distributed_optimizer()},
      {Layout("dp2_distributed_optimizer_param_gather", 2).with_distributed_optimizer(), true},
      {Layout("tp2_pp2_dp2_sp_distopt_interleaved_param_gather", 8, 2, 2)
           .with_schedule("interleaved", 1)
           .with_sequence_parallel()
           .with_distributed_optimizer(),
       true},
  };
}

// `plan` (written by make_plan) with the overlaps switched on, as a new plan file; checked to be
// read back with them (a plan that silently lost them would test nothing).
fs::path with_overlap(const fs::path& plan, const std::string& name, bool param_gather) {
  std::ifstream in(plan);
  std::stringstream text;
  text << in.rdbuf();
  core::Json json = core::Json::parse(text.str());
  json["parallel"]["overlap-grad-reduce"] = true;
  json["parallel"]["overlap-param-gather"] = param_gather;
  json["parallel"]["ddp-bucket-size"] = kBucketParameters;
  const fs::path out = scratch_dir() / ("plan_" + name + "_overlap.json");
  std::ofstream(out) << json.dump(2) << "\n";
  const core::Plan read = core::read_plan_file(out.string());
  if (!read.parallel.overlap_grad_reduce || read.parallel.overlap_param_gather != param_gather ||
      read.parallel.ddp_bucket_size != kBucketParameters)
    throw std::runtime_error("the plan " + out.string() + " does not hold the overlaps asked for");
  return out;
}

class OverlapMatches : public ::testing::TestWithParam<OverlapCase> {};

TEST_P(OverlapMatches, ReferenceAndTheRunWithoutOverlap) {
  const OverlapCase& c = GetParam();
  const Layout& layout = c.layout;
  const Reference& ref = reference();
  const fs::path plain_plan = make_plan(layout);
  const fs::path overlap_plan = with_overlap(plain_plan, layout.name, c.param_gather);
  const fs::path plain_model = scratch_dir() / ("model_" + layout.name + "_no_overlap.safetensors");
  const fs::path overlap_model = scratch_dir() / ("model_" + layout.name + "_overlap.safetensors");
  const RunOutput plain = run_exec(plain_plan, layout.ranks, "--steps 10 --save-model " + quote(plain_model.string()));
  const RunOutput overlap =
      run_exec(overlap_plan, layout.ranks, "--steps 10 --save-model " + quote(overlap_model.string()));
  ASSERT_EQ(overlap.steps.size(), size_t(kSteps)) << overlap.process.command;
  ASSERT_TRUE(fs::exists(overlap_model)) << overlap.process.command;

  std::vector<std::string> problems = loss_mismatches(ref.run.losses, overlap.losses, kLossRelativeTolerance);
  EXPECT_TRUE(problems.empty()) << layout.name << " with overlap: losses differ from the single-rank reference:"
                                << join_lines(problems);
  problems = loss_mismatches(ref.run.grad_norms, overlap.grad_norms, kLossRelativeTolerance, "grad norm");
  EXPECT_TRUE(problems.empty()) << layout.name
                                << " with overlap: gradient norms differ from the single-rank reference:"
                                << join_lines(problems);
  problems = parameter_mismatches(ref.model, overlap_model, kParameterTolerance);
  EXPECT_TRUE(problems.empty()) << layout.name
                                << " with overlap: final parameters differ from the single-rank reference:"
                                << join_lines(problems);

  const double loss_tolerance = c.bit_identical ? 0 : kLossRelativeTolerance;
  const double parameter_tolerance = c.bit_identical ? 0 : kParameterTolerance;
  const std::string how = c.bit_identical ? " (bit for bit)" : " (within the reference's tolerances)";
  problems = loss_mismatches(plain.losses, overlap.losses, loss_tolerance);
  EXPECT_TRUE(problems.empty()) << layout.name << ": losses with and without overlap differ" << how << ":"
                                << join_lines(problems);
  problems = loss_mismatches(plain.grad_norms, overlap.grad_norms, loss_tolerance, "grad norm");
  EXPECT_TRUE(problems.empty()) << layout.name << ": gradient norms with and without overlap differ" << how << ":"
                                << join_lines(problems);
  problems = parameter_mismatches(plain_model, overlap_model, parameter_tolerance);
  EXPECT_TRUE(problems.empty()) << layout.name << ": final parameters with and without overlap differ" << how
                                << ":" << join_lines(problems);
}

INSTANTIATE_TEST_SUITE_P(Overlap, OverlapMatches, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<OverlapCase>& info) { return info.param.layout.name; });

// overlap-param-gather leaves each step's gathers pending until the next forward; a checkpoint
// written in between must wait for them, or the parameters outside a rank's shard are saved
// (and resumed) at the previous step's values.
TEST(OverlapParamGather, CheckpointHoldsTheGatheredValues) {
  const Layout layout = Layout("resume_dp2_param_gather", 2).with_distributed_optimizer();
  const fs::path plan = with_overlap(make_plan(layout), layout.name, true);
  const fs::path straight_model = scratch_dir() / "model_resume_dp2_param_gather_straight.safetensors";
  const fs::path resumed_model = scratch_dir() / "model_resume_dp2_param_gather_resumed.safetensors";
  const std::string checkpointing =
      "--checkpoint-dir " + quote((scratch_dir() / "checkpoints_dp2_param_gather").string()) + " --checkpoint-every 5";
  const RunOutput straight = run_exec(plan, 2, "--steps 10 --save-model " + quote(straight_model.string()));
  const RunOutput first = run_exec(plan, 2, "--steps 5 " + checkpointing);
  ASSERT_EQ(first.steps.size(), 5u) << first.process.command;
  const RunOutput resumed = run_exec(plan, 2, checkpointing + " --resume --save-model " + quote(resumed_model.string()));
  ASSERT_EQ(resumed.steps, (std::vector<int64_t>{6, 7, 8, 9, 10})) << resumed.process.command;
  std::vector<std::string> problems = loss_mismatches(
      std::vector<double>(straight.losses.begin() + 5, straight.losses.end()), resumed.losses, 0, "loss", 6);
  EXPECT_TRUE(problems.empty()) << "the resumed run's losses differ from the straight run's:" << join_lines(problems);
  problems = parameter_mismatches(straight_model, resumed_model, 0);
  EXPECT_TRUE(problems.empty()) << "the resumed run's final parameters differ from the straight run's:"
                                << join_lines(problems);
}

}  // namespace
}  // namespace loom::layout_tests
