// Training on the CUDA backend against the CPU backend, through the real binaries: 10 steps of
// loom-tiny, its Llama twin and a 4-layer, 256-wide GPT, one rank, in fp32 (losses within 1e-4 relative of
// the CPU's) and in bf16 mixed precision (within 2e-2); and tp2 / pp2 on one GPU (two ranks
// sharing it over the host-staged MPI communicator) equal to the one-rank GPU run.

#include "../executor/layouts/layout_support.hpp"
#include "core/plan_json.hpp"
#include "gpu_test_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace loom::layout_tests {
namespace {

namespace fs = std::filesystem;

// A plan from `loom init` for `model` (a preset or a model file) with tp × pp ranks on one node,
// flash attention, and the dtype asked for.
fs::path gpu_plan(const std::string& name, const std::string& model, int tp, int pp, const std::string& dtype) {
  const fs::path plan = scratch_dir() / ("gpu_plan_" + name + ".json");
  const ProcessResult init = run_process(
      quote(LOOM_BINARY) + " init --model " + quote(model) + " --nodes 1 --devices-per-node " + std::to_string(tp * pp) +
      " --tp " + std::to_string(tp) + " --pp " + std::to_string(pp) +
      " --micro-batch-size 2 --global-batch-size 8 --train-iters " + std::to_string(kSteps) + " --dtype " + dtype +
      " --attention-backend flash -o " + quote(plan.string()));
  if (init.exit_code != 0) throw std::runtime_error("loom init failed: " + init.err);
  return plan;
}

fs::path wide_model() {
  const fs::path p = scratch_dir() / "gpu_model_4x256.json";
  std::ofstream(p) << R"({"name": "gpu-test-4x256", "num-layers": 4, "hidden-size": 256, "num-attention-heads": 4,
 "num-query-groups": 4, "ffn-hidden-size": 1024, "padded-vocab-size": 256, "seq-length": 128})";
  return p;
}

struct GpuCase {
  std::string name;
  std::string model;  // "wide": the 4×256 model file; else a preset
  std::string dtype;
  double tolerance;
};

class GpuTraining : public ::testing::TestWithParam<GpuCase> {};

TEST_P(GpuTraining, LossesFollowTheCpuBackend) {
  LOOM_REQUIRE_CUDA_DEVICE();
  const GpuCase& c = GetParam();
  const std::string model = c.model == "wide" ? wide_model().string() : c.model;
  const fs::path plan = gpu_plan(c.name, model, 1, 1, c.dtype);
  const RunOutput cpu = run_exec(plan, 1, "--steps " + std::to_string(kSteps));
  const RunOutput gpu = run_exec(plan, 1, "--steps " + std::to_string(kSteps) + " --backend cuda");
  const std::vector<std::string> problems = loss_mismatches(cpu.losses, gpu.losses, c.tolerance);
  EXPECT_TRUE(problems.empty()) << join_lines(problems) << "\n" << gpu.process.err;
}

INSTANTIATE_TEST_SUITE_P(
    Models, GpuTraining,
    ::testing::Values(GpuCase{"tiny_fp32", "loom-tiny", "fp32", 1e-4}, GpuCase{"wide_fp32", "wide", "fp32", 1e-4},
                      GpuCase{"tiny_bf16", "loom-tiny", "bf16", 2e-2}, GpuCase{"wide_bf16", "wide", "bf16", 2e-2},
                      GpuCase{"tiny_llama_fp32", "loom-tiny-llama", "fp32", 1e-4},
                      GpuCase{"tiny_llama_bf16", "loom-tiny-llama", "bf16", 2e-2}),
    [](const ::testing::TestParamInfo<GpuCase>& info) { return info.param.name; });

// Two ranks on one GPU go over MPI with host staging (NCCL refuses two ranks on one device); the
// Llama twin's tp2 splits its query groups.
TEST(GpuLayouts, TensorAndPipelineParallelOnOneGpuEqualTheOneRankRun) {
  LOOM_REQUIRE_CUDA_DEVICE();
  for (const std::string model : {"loom-tiny", "loom-tiny-llama"}) {
    const RunOutput one = run_exec(gpu_plan(model + "_one", model, 1, 1, "fp32"), 1, "--backend cuda");
    for (const auto& [name, tp, pp] : {std::tuple{"tp2", 2, 1}, std::tuple{"pp2", 1, 2}}) {
      const RunOutput two = run_exec(gpu_plan(model + "_" + name, model, tp, pp, "fp32"), 2, "--backend cuda");
      const std::vector<std::string> problems = loss_mismatches(one.losses, two.losses, kLossRelativeTolerance);
      EXPECT_TRUE(problems.empty()) << model << " " << name << ":\n" << join_lines(problems) << "\n"
                                    << two.process.err;
    }
  }
}

}  // namespace
}  // namespace loom::layout_tests
