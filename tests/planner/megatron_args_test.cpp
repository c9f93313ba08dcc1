// A plan as Megatron-LM arguments: every knob Loom chose appears under Megatron's own flag with
// its value, and the launch command is torchrun over the plan's nodes and devices followed by
// exactly those flags.

#include "planner/megatron_args.hpp"

#include "core/model_presets.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace loom::plan {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

// Llama 3 70B interleaved over 8 nodes: tp 8, pp 4 with 5 layers per virtual stage, dp 2,
// sequence parallel, ZeRO-1 and selective recompute.
core::Plan llama3_70b_plan() {
  core::Plan plan;
  plan.model = core::find_model_preset("llama3-70b").spec;
  plan.training.global_batch_size = 64;
  plan.training.dtype = core::DType::bf16;
  plan.cluster.nodes = 8;
  plan.cluster.devices_per_node = 8;
  plan.cluster.profile = "a100-80gb-dgx";
  core::ParallelPlan& p = plan.parallel;
  p.tensor_parallel = 8;
  p.pipeline_parallel = 4;
  p.data_parallel = 2;
  p.schedule = core::Schedule::interleaved;
  p.layers_per_virtual_stage = 5;
  p.micro_batch_size = 1;
  p.recompute = core::Recompute::selective;
  p.sequence_parallel = true;
  p.distributed_optimizer = true;
  plan.validate();
  return plan;
}

core::Plan gpt2_plan() {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt2-124m").spec;
  plan.model.padded_vocab_size = 50304;
  plan.training.global_batch_size = 32;
  plan.training.dtype = core::DType::fp16;
  plan.cluster.nodes = 1;
  plan.cluster.devices_per_node = 4;
  plan.cluster.profile = "a100-80gb-dgx";
  plan.parallel.pipeline_parallel = 2;
  plan.parallel.data_parallel = 2;
  plan.parallel.micro_batch_size = 2;
  plan.parallel.schedule = core::Schedule::gpipe;
  plan.parallel.recompute = core::Recompute::full;
  plan.validate();
  return plan;
}

// The value following `flag`, or nullopt when the flag is absent; "" for a flag without value.
std::optional<std::string> value_of(const std::vector<std::string>& args, const std::string& flag) {
  const auto it = std::find(args.begin(), args.end(), flag);
  if (it == args.end()) return std::nullopt;
  if (it + 1 == args.end() || (it + 1)->rfind("--", 0) == 0) return std::string();
  return *(it + 1);
}

size_t count_of(const std::vector<std::string>& args, const std::string& flag) {
  return size_t(std::count(args.begin(), args.end(), flag));
}

TEST(MegatronArguments, InterleavedLlamaPlanNamesEveryKnob) {
  const std::vector<std::string> args = megatron_arguments(llama3_70b_plan());
  const std::vector<std::pair<std::string, std::string>> with_values = {
      {"--tensor-model-parallel-size", "8"},
      {"--pipeline-model-parallel-size", "4"},
      {"--num-layers-per-virtual-pipeline-stage", "5"},
      {"--recompute-granularity", "selective"},
      {"--micro-batch-size", "1"},
      {"--global-batch-size", "64"},
      {"--num-layers", "80"},
      {"--hidden-size", "8192"},
      {"--num-attention-heads", "64"},
      {"--num-query-groups", "8"},
      {"--ffn-hidden-size", "28672"},
      {"--seq-length", "8192"},
      {"--max-position-embeddings", "8192"},
      {"--normalization", "RMSNorm"},
      {"--position-embedding-type", "rope"},
  };
  for (const auto& [flag, value] : with_values) {
    EXPECT_EQ(value_of(args, flag), value) << flag;
    EXPECT_EQ(count_of(args, flag), 1u) << flag;
  }
  for (const char* flag : {"--sequence-parallel", "--use-distributed-optimizer", "--group-query-attention", "--swiglu",
                           "--untie-embeddings-and-output-weights", "--bf16", "--disable-bias-linear"}) {
    EXPECT_EQ(value_of(args, flag), "") << flag << " is a switch without a value";
    EXPECT_EQ(count_of(args, flag), 1u) << flag;
  }
  for (const char* absent : {"--fp16", "--recompute-method", "--recompute-num-layers"})
    EXPECT_THAT(args, Not(Contains(std::string(absent))));
  // Megatron derives the data-parallel size itself; there is no such flag.
  EXPECT_THAT(args, Not(Contains(std::string("--data-parallel-size"))));
}

TEST(MegatronArguments, FullRecomputeTiedGpt2WithFp16) {
  const std::vector<std::string> args = megatron_arguments(gpt2_plan());
  EXPECT_EQ(value_of(args, "--recompute-granularity"), "full");
  EXPECT_EQ(value_of(args, "--recompute-method"), "uniform");
  EXPECT_EQ(value_of(args, "--recompute-num-layers"), "1");
  EXPECT_EQ(value_of(args, "--tensor-model-parallel-size"), "1");
  EXPECT_EQ(value_of(args, "--pipeline-model-parallel-size"), "2");
  EXPECT_EQ(value_of(args, "--fp16"), "");
  for (const char* absent : {"--bf16", "--num-layers-per-virtual-pipeline-stage", "--sequence-parallel",
                             "--use-distributed-optimizer", "--group-query-attention", "--num-query-groups",
                             "--swiglu", "--untie-embeddings-and-output-weights", "--disable-bias-linear",
                             "--normalization", "--position-embedding-type"})
    EXPECT_THAT(args, Not(Contains(std::string(absent))));
}

// Reads the command back: the comment lines, the torchrun line, then one flag (and its value) per
// continued line.
struct ParsedCommand {
  std::vector<std::string> comments;
  std::string launcher;
  std::vector<std::string> args;
};

ParsedCommand parse_command(const std::string& text) {
  ParsedCommand out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("#", 0) == 0) {
      EXPECT_TRUE(out.launcher.empty()) << "comment after the command: " << line;
      out.comments.push_back(line);
      continue;
    }
    if (line.size() >= 2 && line.substr(line.size() - 2) == " \\") line.resize(line.size() - 2);
    if (out.launcher.empty()) {
      out.launcher = line;
      continue;
    }
    EXPECT_EQ(line.rfind("    --", 0), 0u) << "not an indented flag line: '" << line << "'";
    std::istringstream words(line);
    std::string word;
    while (words >> word) out.args.push_back(word);
  }
  return out;
}

TEST(MegatronCommand, TorchrunOverTheNodesThenTheFlagsOnePerLine) {
  const core::Plan plan = llama3_70b_plan();
  const std::string command = megatron_command(plan);
  const ParsedCommand parsed = parse_command(command);
  EXPECT_EQ(parsed.launcher, "torchrun --nnodes 8 --nproc-per-node 8 pretrain_gpt.py");
  EXPECT_EQ(parsed.args, megatron_arguments(plan));
  ASSERT_FALSE(parsed.comments.empty());
  EXPECT_THAT(command, HasSubstr("--make-vocab-size-divisible-by"));
  EXPECT_THAT(command, Not(HasSubstr("GPipe")));
  EXPECT_EQ(command.back(), '\n');
  EXPECT_THAT(command, Not(HasSubstr("\\\n\n"))) << "the last line must not continue";
}

TEST(MegatronCommand, GpipePlanSaysMegatronRunsOneFOneBInstead) {
  const core::Plan plan = gpt2_plan();
  const std::string command = megatron_command(plan);
  const ParsedCommand parsed = parse_command(command);
  EXPECT_EQ(parsed.launcher, "torchrun --nnodes 1 --nproc-per-node 4 pretrain_gpt.py");
  EXPECT_EQ(parsed.args, megatron_arguments(plan));
  EXPECT_THAT(command, HasSubstr("GPipe"));
  EXPECT_THAT(command, HasSubstr("--recompute-method uniform \\\n"));
}

TEST(MegatronArguments, MegatronCoreSettingsUnderMegatronsFlags) {
  core::Plan plan = llama3_70b_plan();
  plan.parallel.attention_backend = core::AttentionBackend::flash;
  plan.parallel.overlap_grad_reduce = true;
  plan.parallel.overlap_param_gather = true;
  plan.parallel.tp_comm_overlap = true;
  plan.parallel.ddp_bucket_size = 25'000'000;
  plan.validate();
  const std::vector<std::string> args = megatron_arguments(plan);
  EXPECT_EQ(value_of(args, "--attention-backend"), "flash");
  EXPECT_EQ(value_of(args, "--ddp-bucket-size"), "25000000");
  for (const char* flag : {"--overlap-grad-reduce", "--overlap-param-gather", "--tp-comm-overlap"}) {
    EXPECT_EQ(value_of(args, flag), "") << flag << " is a switch without a value";
    EXPECT_EQ(count_of(args, flag), 1u) << flag;
  }
  EXPECT_EQ(parse_command(megatron_command(plan)).args, args);

  // The plan's defaults: Megatron-Core's own default backend is `auto`, so unfused is named; no
  // overlap switch; Megatron's bucket rule by leaving the flag out.
  const std::vector<std::string> plain = megatron_arguments(gpt2_plan());
  EXPECT_EQ(value_of(plain, "--attention-backend"), "unfused");
  for (const char* absent : {"--overlap-grad-reduce", "--overlap-param-gather", "--tp-comm-overlap", "--ddp-bucket-size"})
    EXPECT_THAT(plain, Not(Contains(std::string(absent))));
  plan.parallel.ddp_bucket_size.reset();
  EXPECT_THAT(megatron_arguments(plan), Not(Contains(std::string("--ddp-bucket-size"))));
}

}  // namespace
}  // namespace loom::plan
