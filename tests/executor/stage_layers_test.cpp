// Uneven pipeline splits (issue 23) in the executor, without MPI: which global layers each chunk of
// each pipeline rank holds (plan.virtual_stage_layers in model order, entry c·p + r being chunk c
// of rank r), that a GptStage declares exactly those layers' parameters and assigns each to its
// chunk, and that chunks with no layers (only the embedding, or only the output layer and loss)
// run their forward and backward.

#include "core/plan.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/model/gpt_stage.hpp"
#include "executor/model/stage_layers.hpp"
#include "executor/model/tensor_parallel.hpp"
#include "executor/tensor.hpp"
#include "executor/timers/timer_stack.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace loom::exec {
namespace {

constexpr int64_t kHidden = 16, kVocab = 64, kSeq = 8, kMicroBatch = 1;

// A tiny GPT-2 of `layers` layers on pp ranks; `split` as pipeline-layer-split (interleaved when
// it has more than pp entries), or a Megatron rule set by `adjust`.
core::Plan plan_of(int64_t layers, int64_t pp, std::vector<int64_t> split = {},
                   void (*adjust)(core::ParallelPlan&) = nullptr) {
  core::Plan plan;
  plan.model.name = "stage-layers-test";
  plan.model.num_layers = layers;
  plan.model.hidden_size = kHidden;
  plan.model.num_attention_heads = 2;
  plan.model.ffn_hidden_size = 4 * kHidden;
  plan.model.padded_vocab_size = kVocab;
  plan.model.seq_length = kSeq;
  plan.cluster.profile = "a100-80gb-dgx";  // validate() wants one; the executor reads none
  plan.cluster.devices_per_node = pp;
  plan.training.global_batch_size = 4 * kMicroBatch;
  plan.training.dtype = core::DType::fp32;
  plan.parallel.micro_batch_size = kMicroBatch;
  plan.parallel.pipeline_parallel = pp;
  if (int64_t(split.size()) > pp) plan.parallel.schedule = core::Schedule::interleaved;
  plan.parallel.pipeline_layer_split = std::move(split);
  if (adjust) adjust(plan.parallel);
  plan.validate();
  return plan;
}

std::vector<std::pair<int64_t, int64_t>> chunks_of(const core::Plan& plan, int64_t rank) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const ChunkLayers& c : chunk_layers(plan, rank)) out.emplace_back(c.first, c.count);
  return out;
}

using Chunks = std::vector<std::pair<int64_t, int64_t>>;  // (first layer, layers) per chunk

TEST(StageLayers, EvenSplitsAreUnchanged) {
  const core::Plan plan = plan_of(4, 2);
  EXPECT_EQ(chunks_of(plan, 0), (Chunks{{0, 2}}));
  EXPECT_EQ(chunks_of(plan, 1), (Chunks{{2, 2}}));
  EXPECT_EQ(stage_layers(plan, 1), (std::vector<int64_t>{2, 3}));
}

TEST(StageLayers, UnevenSplitsStartWhereTheStagesBeforeEnd) {
  EXPECT_EQ(chunks_of(plan_of(4, 2, {1, 3}), 0), (Chunks{{0, 1}}));
  EXPECT_EQ(chunks_of(plan_of(4, 2, {1, 3}), 1), (Chunks{{1, 3}}));
  EXPECT_EQ(chunks_of(plan_of(4, 2, {3, 1}), 1), (Chunks{{3, 1}}));
  EXPECT_EQ(chunks_of(plan_of(7, 3, {2, 3, 2}), 2), (Chunks{{5, 2}}));
}

TEST(StageLayers, ZeroLayerFirstAndLastStages) {
  EXPECT_EQ(chunks_of(plan_of(4, 2, {0, 4}), 0), (Chunks{{0, 0}}));
  EXPECT_EQ(chunks_of(plan_of(4, 2, {0, 4}), 1), (Chunks{{0, 4}}));
  EXPECT_EQ(chunks_of(plan_of(4, 2, {4, 0}), 1), (Chunks{{4, 0}}));
  EXPECT_TRUE(stage_layers(plan_of(4, 2, {0, 4}), 0).empty());
}

TEST(StageLayers, InterleavedChunksFollowModelOrder) {
  // Virtual stages in model order: rank 0 chunk 0, rank 1 chunk 0, rank 0 chunk 1, rank 1 chunk 1.
  const core::Plan plan = plan_of(6, 2, {0, 2, 3, 1});
  EXPECT_EQ(chunks_of(plan, 0), (Chunks{{0, 0}, {2, 3}}));
  EXPECT_EQ(chunks_of(plan, 1), (Chunks{{0, 2}, {5, 1}}));
  EXPECT_EQ(stage_layers(plan, 0), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(stage_layers(plan, 1), (std::vector<int64_t>{0, 1, 5}));
}

TEST(StageLayers, MegatronRules) {
  // decoder-first/last-pipeline-num-layers 1 and 1 on 6 layers over pp 3: [1, 4, 1].
  const core::Plan first_last = plan_of(6, 3, {}, [](core::ParallelPlan& p) {
    p.first_stage_layers = 1;
    p.last_stage_layers = 1;
  });
  EXPECT_EQ(chunks_of(first_last, 1), (Chunks{{1, 4}}));
  EXPECT_EQ(chunks_of(first_last, 2), (Chunks{{5, 1}}));
  // The embedding and the loss each count as a layer: 4 + 2 over pp 3 is [1, 2, 1].
  const core::Plan accounted = plan_of(4, 3, {}, [](core::ParallelPlan& p) {
    p.account_for_embedding = true;
    p.account_for_loss = true;
  });
  EXPECT_EQ(chunks_of(accounted, 0), (Chunks{{0, 1}}));
  EXPECT_EQ(chunks_of(accounted, 1), (Chunks{{1, 2}}));
  EXPECT_EQ(chunks_of(accounted, 2), (Chunks{{3, 1}}));
  // Interleaved with 2 virtual stages per rank: 6 + 2 over 4 virtual stages is [1, 2, 2, 1].
  const core::Plan interleaved = plan_of(6, 2, {}, [](core::ParallelPlan& p) {
    p.schedule = core::Schedule::interleaved;
    p.virtual_stages_per_rank = 2;
    p.account_for_embedding = true;
    p.account_for_loss = true;
  });
  EXPECT_EQ(chunks_of(interleaved, 0), (Chunks{{0, 1}, {3, 2}}));
  EXPECT_EQ(chunks_of(interleaved, 1), (Chunks{{1, 2}, {5, 1}}));
}

// The layer index in a parameter name such as "h.3.attn.c_attn.weight", or none.
std::optional<int64_t> layer_of(const std::string& name) {
  if (name.rfind("h.", 0) != 0) return std::nullopt;
  return std::stoll(name.substr(2, name.find('.', 2) - 2));
}

// Every rank's GptStage declares exactly its chunks' layers, each parameter assigned to its chunk,
// the embedding on rank 0's chunk 0 and the final norm on the last rank's last chunk.
void check_stage_parameters(const core::Plan& plan) {
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  TimerStack timers;
  std::set<int64_t> all_layers;
  const int64_t pp = plan.parallel.pipeline_parallel, v = plan.virtual_stages();
  for (int64_t rank = 0; rank < pp; ++rank) {
    GptStage stage(plan, rank, TensorParallel(nullptr, false, timers), *kernels, timers, 1);
    const std::vector<ChunkLayers> chunks = chunk_layers(plan, rank);
    const std::vector<int64_t> owner = stage.parameter_chunks();
    const std::vector<Parameter>& parameters = stage.parameters().all();
    for (size_t i = 0; i < parameters.size(); ++i) {
      const std::string& name = parameters[i].name;
      if (const std::optional<int64_t> layer = layer_of(name)) {
        const ChunkLayers& chunk = chunks[size_t(owner[i])];
        EXPECT_TRUE(*layer >= chunk.first && *layer < chunk.first + chunk.count)
            << name << " on rank " << rank << " is in chunk " << owner[i];
        all_layers.insert(*layer);
      } else if (name.rfind("ln_f.", 0) == 0) {
        EXPECT_EQ(rank, pp - 1) << name;
        EXPECT_EQ(owner[i], v - 1) << name;
      } else {
        EXPECT_TRUE(rank == 0 || rank == pp - 1) << name << " on rank " << rank;  // wte (tied), wpe
      }
    }
  }
  EXPECT_EQ(int64_t(all_layers.size()), plan.model.num_layers);
}

TEST(StageLayers, GptStageDeclaresItsChunksLayers) {
  check_stage_parameters(plan_of(4, 2, {1, 3}));
  check_stage_parameters(plan_of(4, 2, {0, 4}));
  check_stage_parameters(plan_of(4, 2, {4, 0}));
  check_stage_parameters(plan_of(6, 2, {0, 2, 3, 1}));
}

// Random tokens and targets of one microbatch.
std::vector<int32_t> tokens_of(int seed) {
  std::vector<int32_t> tokens(size_t(kMicroBatch * kSeq));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 7 + size_t(seed) * 13) % kVocab);
  return tokens;
}

// A chunk with no layers still runs: [0, 4]'s first stage passes the embedding on and takes the
// gradient back into it; [4, 0]'s last stage computes the loss straight from its input.
TEST(StageLayers, ZeroLayerChunksRunForwardAndBackward) {
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  TimerStack timers;
  const std::vector<int32_t> tokens = tokens_of(1), targets = tokens_of(2);
  {
    const core::Plan plan = plan_of(4, 2, {0, 4});
    GptStage first(plan, 0, TensorParallel(nullptr, false, timers), *kernels, timers, 1);
    const Tensor out = first.forward(0, 0, Tensor(), tokens.data(), targets.data());
    ASSERT_TRUE(out.defined());
    EXPECT_EQ(out.numel(), kMicroBatch * kSeq * kHidden);
    const Tensor grad_input = first.backward(0, 0, out, 1.0f);
    EXPECT_FALSE(grad_input.defined());
    double norm = 0;
    for (const Parameter& p : first.parameters().all())
      for (int64_t i = 0; i < p.grad.numel(); ++i) norm += double(p.grad.data<float>()[i]) * p.grad.data<float>()[i];
    EXPECT_GT(norm, 0) << "the embedding got no gradient";
  }
  {
    const core::Plan plan = plan_of(4, 2, {4, 0});
    GptStage first(plan, 0, TensorParallel(nullptr, false, timers), *kernels, timers, 1);
    GptStage last(plan, 1, TensorParallel(nullptr, false, timers), *kernels, timers, 1);
    const Tensor activation = first.forward(0, 0, Tensor(), tokens.data(), targets.data());
    const Tensor out = last.forward(0, 0, activation, tokens.data(), targets.data());
    EXPECT_FALSE(out.defined());
    EXPECT_TRUE(std::isfinite(last.loss_sum()));
    EXPECT_GT(last.loss_sum(), 0);
    const Tensor grad = last.backward(0, 0, Tensor(), 1.0f);
    ASSERT_TRUE(grad.defined());
    EXPECT_EQ(grad.numel(), kMicroBatch * kSeq * kHidden);
  }
}

}  // namespace
}  // namespace loom::exec
