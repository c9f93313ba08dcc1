// Resuming under another plan (issue 22): 10 steps under plan A with a checkpoint at the end, then
// --resume under plan B for steps 11 to 20; the losses and gradient norms of steps 11 to 20 must
// equal those of an uninterrupted 20-step run under A within 1e-5 relative (the layouts change
// only the order of floating-point reductions). Negative controls: a resume that reverses one
// tensor's elements or loads Adam's v as zeros (a test-only fault, LOOM_TEST_ONLY_RESHARD_FAULT)
// fails that comparison. Bad input: a checkpoint of another model and a torn manifest are one
// line each, exit 2, and leave the checkpoint directory as it was.

#include "layout_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

namespace loom::layout_tests {
namespace {

namespace fs = std::filesystem;

constexpr int kTotalSteps = 20;
constexpr int kSplitStep = 10;

struct ReshardCase {
  std::string name;
  Layout from, to;
};

void PrintTo(const ReshardCase& c, std::ostream* os) { *os << c.name; }

std::vector<int64_t> steps_between(int64_t first, int64_t last) {
  std::vector<int64_t> steps(size_t(last - first + 1));
  std::iota(steps.begin(), steps.end(), first);
  return steps;
}

// Plan A's uninterrupted 20-step run, and its first 10 steps with a checkpoint at step 10 (kept
// per layout: the negative controls and bad inputs reuse them).
struct Written {
  RunOutput straight;
  fs::path checkpoints;
};

const Written& written_under(const Layout& from) {
  static std::map<std::string, Written> done;
  if (auto found = done.find(from.name); found != done.end()) return found->second;
  const Layout a = from.with_train_iters(kTotalSteps);
  const fs::path plan = make_plan(a);
  Written w;
  w.straight = run_exec(plan, a.ranks, "--steps " + std::to_string(kTotalSteps));
  if (w.straight.steps != steps_between(1, kTotalSteps))
    throw std::runtime_error("the straight run did not train steps 1 to 20: " + w.straight.process.command);
  w.checkpoints = scratch_dir() / ("reshard_checkpoints_" + a.name);
  const RunOutput first = run_exec(plan, a.ranks,
                                   "--steps " + std::to_string(kSplitStep) + " --checkpoint-dir " + quote(w.checkpoints.string()));
  if (first.steps != steps_between(1, kSplitStep))
    throw std::runtime_error("the first run did not train steps 1 to 10: " + first.process.command);
  return done.emplace(from.name, std::move(w)).first->second;
}

// A copy of the checkpoints for one resumed run (which writes its own at step 20).
fs::path copy_of(const fs::path& checkpoints, const std::string& name) {
  const fs::path copy = scratch_dir() / ("reshard_copy_" + name);
  fs::remove_all(copy);
  fs::copy(checkpoints, copy, fs::copy_options::recursive);
  return copy;
}

RunOutput resume_under(const Layout& to, const fs::path& checkpoints, bool require_success = true) {
  const Layout b = to.with_train_iters(kTotalSteps);
  const fs::path plan = make_plan(b);
  return run_exec(plan, b.ranks, "--checkpoint-dir " + quote(checkpoints.string()) + " --resume", require_success);
}

std::vector<double> tail_of(const std::vector<double>& all) {
  return std::vector<double>(all.begin() + kSplitStep, all.end());
}

class ReshardedResume : public ::testing::TestWithParam<ReshardCase> {};

TEST_P(ReshardedResume, MatchesTheUninterruptedRun) {
  const ReshardCase& c = GetParam();
  const Written& a = written_under(c.from);
  const RunOutput resumed = resume_under(c.to, copy_of(a.checkpoints, c.name));
  RecordProperty("wall_s", std::to_string(resumed.process.wall_s));
  ASSERT_EQ(resumed.steps, steps_between(kSplitStep + 1, kTotalSteps)) << resumed.process.command;
  std::vector<std::string> problems =
      loss_mismatches(tail_of(a.straight.losses), resumed.losses, kLossRelativeTolerance, "loss", kSplitStep + 1);
  EXPECT_TRUE(problems.empty()) << c.name << ": losses after resharding differ from the uninterrupted run's:"
                                << join_lines(problems);
  problems = loss_mismatches(tail_of(a.straight.grad_norms), resumed.grad_norms, kLossRelativeTolerance,
                             "grad norm", kSplitStep + 1);
  EXPECT_TRUE(problems.empty()) << c.name << ": gradient norms after resharding differ:" << join_lines(problems);
}

INSTANTIATE_TEST_SUITE_P(
    Reshard, ReshardedResume,
    ::testing::Values(
        ReshardCase{"tp2_pp2_to_dp4", Layout("reshard_tp2_pp2", 4, 2, 2), Layout("reshard_dp4", 4)},
        ReshardCase{"dp2_zero_to_tp2", Layout("reshard_dp2_zero", 2).with_distributed_optimizer(),
                    Layout("reshard_tp2", 2, 2)},
        ReshardCase{"pp2_interleaved_to_pp2_1f1b_b1",
                    Layout("reshard_pp2_interleaved", 2, 1, 2).with_schedule("interleaved", 1),
                    Layout("reshard_pp2_1f1b_b1", 2, 1, 2).with_micro_batch_size(1)},
        ReshardCase{"tp2_pp2_to_pp3", Layout("reshard6_tp2_pp2", 4, 2, 2).with_model_file(six_layer_model_json()),
                    Layout("reshard6_pp3", 3, 1, 3).with_model_file(six_layer_model_json())},
        ReshardCase{"tp2_to_1rank", Layout("reshard_tp2", 2, 2), Layout("reshard_1rank", 1)},
        // Uneven pipeline splits (issue 23): parameters move by their global layer index.
        ReshardCase{"pp2_even_to_split_1_3", Layout("reshard_pp2_even", 2, 1, 2),
                    Layout("reshard_pp2_split_1_3", 2, 1, 2).with_layer_split({1, 3})},
        ReshardCase{"split_3_1_to_pp2_even", Layout("reshard_pp2_split_3_1", 2, 1, 2).with_layer_split({3, 1}),
                    Layout("reshard_pp2_even", 2, 1, 2)},
        ReshardCase{"interleaved_accounted_to_pp3_first_last",
                    Layout("reshard6_pp2_interleaved_accounted", 2, 1, 2)
                        .with_model_file(six_layer_model_json())
                        .with_accounting(true, true, 2),  // [1, 2, 2, 1]
                    Layout("reshard6_pp3_first_last", 3, 1, 3)
                        .with_model_file(six_layer_model_json())
                        .with_first_last_layers(1, 1)},  // [1, 4, 1]
        // Llama: grouped-query attention split over tp, fused [gate | up] and q|k|v shards, untied head.
        ReshardCase{"llama_tp2_pp2_to_dp2_zero", Layout("reshard_llama_tp2_pp2", 4, 2, 2).with_llama(),
                    Layout("reshard_llama_dp2_zero", 2).with_distributed_optimizer().with_llama()},
        ReshardCase{"dp4_zero_to_tp2_pp2_recompute",
                    Layout("reshard_dp4_zero", 4).with_distributed_optimizer(),
                    Layout("reshard_tp2_pp2_dp1_recompute", 4, 2, 2).with_recompute("full")}),
    [](const ::testing::TestParamInfo<ReshardCase>& info) { return info.param.name; });

// The comparisons above can fail: a wrong permutation of one tensor, or Adam's v left out.
TEST(ReshardedResumeControls, AWrongPermutationOrNoSecondMomentFailsTheComparison) {
  const Layout from("reshard_tp2", 2, 2), to("reshard_1rank", 1);
  const Written& a = written_under(from);
  const fs::path plan = make_plan(to.with_train_iters(kTotalSteps));
  for (const std::string fault : {"reverse:h.0.mlp.c_fc.weight", "drop-v"}) {
    const fs::path copy = copy_of(a.checkpoints, "control");
    RunOutput controlled;
    controlled.process = run_process("LOOM_TEST_ONLY_RESHARD_FAULT=" + fault + " " + quote(MPIEXEC) + " -np 1 " +
                                     quote(LOOM_EXEC_BINARY) + " run " + quote(plan.string()) +
                                     " --jsonl --threads 1 --checkpoint-dir " + quote(copy.string()) + " --resume");
    std::istringstream lines(controlled.process.out);
    for (std::string line; std::getline(lines, line);) {
      const auto at = line.find("\"loss\":");
      if (!line.empty() && line.front() == '{' && at != std::string::npos)
        controlled.losses.push_back(std::stod(line.substr(at + 7)));
    }
    ASSERT_EQ(controlled.process.exit_code, 0) << controlled.process.command << "\n" << controlled.process.err;
    ASSERT_EQ(controlled.losses.size(), size_t(kTotalSteps - kSplitStep)) << controlled.process.command;
    const std::vector<std::string> problems =
        loss_mismatches(tail_of(a.straight.losses), controlled.losses, kLossRelativeTolerance);
    EXPECT_FALSE(problems.empty()) << "the fault " << fault << " went unnoticed by the loss comparison";
  }
}

// Every file under `dir` with its size and contents, to show that a refused resume changed nothing.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream contents;
    contents << in.rdbuf();
    files[fs::relative(entry.path(), dir).string()] = contents.str();
  }
  return files;
}

// The error lines of a `loom run` (stderr, launcher noise aside).
std::vector<std::string> error_lines(const std::string& err) {
  std::vector<std::string> lines;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);)
    if (line.find("error:") != std::string::npos) lines.push_back(line);
  return lines;
}

TEST(ReshardedResumeBadInput, ACheckpointOfAnotherModelIsOneLineAndExit2) {
  const Written& six = written_under(Layout("reshard6_tp2_pp2", 4, 2, 2).with_model_file(six_layer_model_json()));
  const fs::path copy = copy_of(six.checkpoints, "other_model");
  const auto before = snapshot(copy);
  const fs::path plan = make_plan(Layout("reshard_1rank", 1).with_train_iters(kTotalSteps));
  const RunOutput run =
      run_loom_run(plan, "--checkpoint-dir " + quote(copy.string()) + " --resume", /*require_success=*/false);
  EXPECT_EQ(run.process.exit_code, 2) << run.process.err;
  const std::vector<std::string> errors = error_lines(run.process.err);
  ASSERT_EQ(errors.size(), 1u) << run.process.err;
  EXPECT_NE(errors[0].find("was written for num-layers=6, this plan has num-layers=4"), std::string::npos)
      << errors[0];
  EXPECT_TRUE(run.steps.empty()) << "nothing may be trained";
  EXPECT_EQ(snapshot(copy), before) << "the checkpoint directory changed";
}

TEST(ReshardedResumeBadInput, ATornManifestIsOneLineAndExit2) {
  const Written& a = written_under(Layout("reshard_tp2", 2, 2));
  const fs::path copy = copy_of(a.checkpoints, "torn");
  const fs::path manifest = copy / "step-000010" / "manifest.json";
  ASSERT_TRUE(fs::exists(manifest));
  fs::resize_file(manifest, fs::file_size(manifest) / 2);
  const auto before = snapshot(copy);
  const fs::path plan = make_plan(Layout("reshard_1rank", 1).with_train_iters(kTotalSteps));
  const RunOutput run =
      run_loom_run(plan, "--checkpoint-dir " + quote(copy.string()) + " --resume", /*require_success=*/false);
  EXPECT_EQ(run.process.exit_code, 2) << run.process.err;
  const std::vector<std::string> errors = error_lines(run.process.err);
  ASSERT_EQ(errors.size(), 1u) << run.process.err;
  EXPECT_NE(errors[0].find("damaged manifest"), std::string::npos) << errors[0];
  EXPECT_TRUE(run.steps.empty()) << "nothing may be trained";
  EXPECT_EQ(snapshot(copy), before) << "the checkpoint directory changed";
}

}  // namespace
}  // namespace loom::layout_tests
