// The model under each attention backend: a one-rank GPT stage runs the forward and backward of
// one microbatch with attention-backend unfused and flash. Flash gives the same loss and
// gradients (fp32 rounding), and the peak bytes the executor's allocator counts (what loom-exec
// reports as a rank's peak memory) fall by at least the probabilities flash does not keep.

#include "core/plan.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/model/gpt_stage.hpp"
#include "executor/model/tensor_parallel.hpp"
#include "executor/tensor.hpp"
#include "executor/timers/timer_stack.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace loom::exec {
namespace {

constexpr int64_t kLayers = 2, kHidden = 64, kHeads = 4, kVocab = 256, kMicroBatch = 2;
// Long enough that a layer's probabilities (b·a·s² floats, 2 MiB) are a large part of its
// activations (about 2.6 MiB besides them).
constexpr int64_t kSeq = 256;

core::Plan plan_with(core::AttentionBackend backend, core::Recompute recompute) {
  core::Plan plan;
  plan.model.name = "attention-backend-test";
  plan.model.num_layers = kLayers;
  plan.model.hidden_size = kHidden;
  plan.model.num_attention_heads = kHeads;
  plan.model.ffn_hidden_size = 4 * kHidden;
  plan.model.padded_vocab_size = kVocab;
  plan.model.seq_length = kSeq;
  plan.cluster.profile = "a100-80gb-dgx";  // validate() wants one; the executor reads none
  plan.training.global_batch_size = kMicroBatch;
  plan.training.dtype = core::DType::fp32;
  plan.parallel.micro_batch_size = kMicroBatch;
  plan.parallel.attention_backend = backend;
  plan.parallel.recompute = recompute;
  plan.validate();
  return plan;
}

struct MicrobatchResult {
  double loss = 0;
  std::vector<float> gradients;  // every parameter's, in the store's order
  int64_t peak_bytes = 0;        // above what was allocated before the forward
};

MicrobatchResult forward_backward(const core::Plan& plan) {
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  TimerStack timers;
  GptStage stage(plan, 0, TensorParallel(nullptr, false, timers), *kernels, timers, 1);
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> token(0, int32_t(kVocab - 1));
  std::vector<int32_t> tokens(size_t(kMicroBatch * kSeq)), targets(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = token(rng);
    targets[i] = token(rng);
  }

  reset_peak_memory(Device::cpu);
  const int64_t before = memory_stats(Device::cpu).current_bytes;
  stage.forward(0, 0, Tensor(), tokens.data(), targets.data());
  stage.backward(0, 0, Tensor(), 1.0f);
  MicrobatchResult result;
  result.peak_bytes = memory_stats(Device::cpu).peak_bytes - before;
  result.loss = stage.loss_sum();
  for (const Parameter& p : stage.parameters().all())
    result.gradients.insert(result.gradients.end(), p.grad.data<float>(), p.grad.data<float>() + p.grad.numel());
  return result;
}

// max |a − b| / max |b|, as the kernel tests measure.
double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double difference = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference = std::max(difference, double(std::abs(a[i] - b[i])));
    scale = std::max(scale, double(std::abs(b[i])));
  }
  return difference / scale;
}

class AttentionBackendModel : public ::testing::TestWithParam<core::Recompute> {};

TEST_P(AttentionBackendModel, FlashComputesTheUnfusedLossAndGradients) {
  const MicrobatchResult unfused = forward_backward(plan_with(core::AttentionBackend::unfused, GetParam()));
  const MicrobatchResult flash = forward_backward(plan_with(core::AttentionBackend::flash, GetParam()));
  EXPECT_NEAR(flash.loss, unfused.loss, 1e-6 * std::abs(unfused.loss));
  ASSERT_EQ(flash.gradients.size(), unfused.gradients.size());
  EXPECT_LE(max_relative_difference(flash.gradients, unfused.gradients), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Recompute, AttentionBackendModel,
                         ::testing::Values(core::Recompute::none, core::Recompute::selective,
                                           core::Recompute::full),
                         [](const ::testing::TestParamInfo<core::Recompute>& info) {
                           return std::string(core::to_string(info.param));
                         });

// Without recompute every layer keeps its attention state until its backward, and the peak comes
// while all of them are alive (at the loss): the unfused run holds kLayers probabilities
// [b, a, s, s] there, the flash run kLayers log-sum-exps [b, a, s] instead, and nothing else
// differs (the flash kernels allocate no tensor at all).
TEST(AttentionBackendMemory, FlashPeakIsLowerByTheProbabilities) {
  const MicrobatchResult unfused =
      forward_backward(plan_with(core::AttentionBackend::unfused, core::Recompute::none));
  const MicrobatchResult flash = forward_backward(plan_with(core::AttentionBackend::flash, core::Recompute::none));
  const int64_t probabilities_bytes = kMicroBatch * kHeads * kSeq * kSeq * 4;
  const int64_t log_sum_exp_bytes = kMicroBatch * kHeads * kSeq * 4;
  RecordProperty("unfused_peak_bytes", std::to_string(unfused.peak_bytes));
  RecordProperty("flash_peak_bytes", std::to_string(flash.peak_bytes));
  EXPECT_EQ(unfused.peak_bytes - flash.peak_bytes, kLayers * (probabilities_bytes - log_sum_exp_bytes))
      << "unfused peak " << unfused.peak_bytes << " B, flash peak " << flash.peak_bytes << " B";
}

// Selective recompute: the unfused run still holds one layer's recomputed probabilities in its
// backward; flash keeps its log-sum-exps and recomputes nothing, so it stays below.
TEST(AttentionBackendMemory, FlashPeakIsLowerUnderSelectiveRecompute) {
  const MicrobatchResult unfused =
      forward_backward(plan_with(core::AttentionBackend::unfused, core::Recompute::selective));
  const MicrobatchResult flash =
      forward_backward(plan_with(core::AttentionBackend::flash, core::Recompute::selective));
  EXPECT_LT(flash.peak_bytes, unfused.peak_bytes)
      << "unfused peak " << unfused.peak_bytes << " B, flash peak " << flash.peak_bytes << " B";
}

}  // namespace
}  // namespace loom::exec
