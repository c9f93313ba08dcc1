#include "simulator/memory_model.hpp"

#include "core/error.hpp"
#include "core/model_arithmetic.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace loom::sim {
namespace {

using core::DType;
using core::Recompute;
using core::Schedule;

// GPT-3 175B as Korthikanti et al. 2022 Table 3 and Narayanan et al. SC21 Table 1 train it.
core::ModelSpec gpt3_175b() {
  core::ModelSpec m;
  m.name = "gpt3-175b";
  m.num_layers = 96;
  m.hidden_size = 12288;
  m.num_attention_heads = 96;
  m.num_query_groups = 96;
  m.ffn_hidden_size = 4 * 12288;
  m.padded_vocab_size = 51200;
  m.seq_length = 2048;
  return m;
}

// tp 8, pp 8, dp 24 on 1536 devices, mbs 1, gbs 1536, full recompute, bf16 (SC21 Table 1 row).
core::Plan gpt3_plan() {
  core::Plan plan;
  plan.model = gpt3_175b();
  plan.training.global_batch_size = 1536;
  plan.training.dtype = DType::bf16;
  plan.cluster.nodes = 192;
  plan.cluster.devices_per_node = 8;
  plan.cluster.profile = "a100-80gb";
  plan.parallel.tensor_parallel = 8;
  plan.parallel.pipeline_parallel = 8;
  plan.parallel.data_parallel = 24;
  plan.parallel.micro_batch_size = 1;
  plan.parallel.schedule = Schedule::one_f_one_b;
  plan.parallel.recompute = Recompute::full;
  plan.validate();
  return plan;
}

double activations(bool sp, Recompute r, int64_t t = 8, DType d = DType::bf16) {
  return activation_bytes_per_layer(gpt3_175b(), 1, t, sp, r, d);
}

// Korthikanti et al. 2022 Table 2, evaluated here from the printed formulas.
TEST(ActivationBytesPerLayer, MatchesKorthikantiTable2) {
  const double s = 2048, b = 1, h = 12288, a = 96, t = 8;
  EXPECT_DOUBLE_EQ(activations(false, Recompute::none, 1), s * b * h * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(activations(false, Recompute::none),
                   s * b * h * (10 + 24 / t + 5 * a * s / (h * t)));
  EXPECT_DOUBLE_EQ(activations(true, Recompute::none), s * b * h / t * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(activations(false, Recompute::selective), s * b * h * (10 + 24 / t));
  EXPECT_DOUBLE_EQ(activations(true, Recompute::selective), 34 * s * b * h / t);
  EXPECT_DOUBLE_EQ(activations(false, Recompute::full), 2 * s * b * h);
  EXPECT_DOUBLE_EQ(activations(true, Recompute::full), 2 * s * b * h / t);
}

TEST(ActivationBytesPerLayer, ScalesWithMicroBatchAndDoublesForFp32) {
  for (bool sp : {false, true}) {
    for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full}) {
      EXPECT_DOUBLE_EQ(activations(sp, r, 8, DType::fp32), 2 * activations(sp, r));
      EXPECT_DOUBLE_EQ(activations(sp, r, 8, DType::fp16), activations(sp, r));
      EXPECT_DOUBLE_EQ(activation_bytes_per_layer(gpt3_175b(), 4, 8, sp, r, DType::bf16),
                       4 * activations(sp, r));
    }
  }
}

TEST(BytesPerParameter, MixedPrecisionAdam) {
  core::TrainSpec train;
  core::ParallelPlan par;
  par.data_parallel = 8;
  train.dtype = DType::bf16;
  EXPECT_DOUBLE_EQ(bytes_per_parameter(train, par).total(), 18.0);
  EXPECT_DOUBLE_EQ(bytes_per_parameter(train, par).weights, 2.0);
  par.distributed_optimizer = true;
  EXPECT_DOUBLE_EQ(bytes_per_parameter(train, par).total(), 7.5);  // 6 + 12/8
  train.dtype = DType::fp16;
  EXPECT_DOUBLE_EQ(bytes_per_parameter(train, par).total(), 7.5);
  train.dtype = DType::fp32;
  EXPECT_DOUBLE_EQ(bytes_per_parameter(train, par).total(), 9.0);  // 8 + 8/8
  par.distributed_optimizer = false;
  EXPECT_DOUBLE_EQ(bytes_per_parameter(train, par).total(), 16.0);
  EXPECT_DOUBLE_EQ(bytes_per_parameter(train, par).weights, 4.0);
}

TEST(InFlight, OneFOneBHoldsPMinusStageCappedAtM) {
  core::Plan plan = gpt3_plan();  // m = 1536 / 24 = 64, 12 layers per stage
  for (int64_t i = 0; i < 8; ++i)
    EXPECT_DOUBLE_EQ(layer_activations_in_flight(plan, i), (8 - i) * 12.0);
  EXPECT_EQ(embedding_microbatches_in_flight(plan), 8);
  plan.training.global_batch_size = 24 * 3;  // m = 3 < p
  EXPECT_DOUBLE_EQ(layer_activations_in_flight(plan, 0), 3 * 12.0);
  EXPECT_DOUBLE_EQ(layer_activations_in_flight(plan, 6), 2 * 12.0);
  EXPECT_EQ(embedding_microbatches_in_flight(plan), 3);
  EXPECT_THROW(layer_activations_in_flight(plan, 8), InvalidInput);
  EXPECT_THROW(layer_activations_in_flight(plan, -1), InvalidInput);
}

TEST(InFlight, GpipeHoldsEveryMicrobatch) {
  core::Plan plan = gpt3_plan();
  plan.parallel.schedule = Schedule::gpipe;
  for (int64_t i = 0; i < 8; ++i) EXPECT_DOUBLE_EQ(layer_activations_in_flight(plan, i), 64 * 12.0);
  EXPECT_EQ(embedding_microbatches_in_flight(plan), 64);
}

TEST(InFlight, InterleavedStageZeroIsKorthikantiFactor) {
  core::Plan plan = gpt3_plan();
  plan.parallel.schedule = Schedule::interleaved;
  const double p = 8, per_stage = 12;
  for (int64_t per_virtual : {1, 2, 3, 4, 6}) {
    plan.parallel.layers_per_virtual_stage = per_virtual;
    plan.validate();
    const double v = double(plan.virtual_stages());
    // L/p · p·(1 + (p − 1)/(p·v)) layer-microbatches on stage 0.
    EXPECT_DOUBLE_EQ(layer_activations_in_flight(plan, 0), per_stage * p * (1 + (p - 1) / (p * v)))
        << "v=" << v;
    // Later ranks warm up two chunk-microbatches fewer per rank.
    EXPECT_DOUBLE_EQ(layer_activations_in_flight(plan, 7), ((v - 1) * p + 1) * per_stage / v);
    EXPECT_EQ(embedding_microbatches_in_flight(plan), 16);  // min(2p, m), m = 64
  }
  plan.parallel.layers_per_virtual_stage = 3;  // v = 4
  plan.training.global_batch_size = 24 * 8;    // m = p: everything runs forward first
  plan.validate();
  EXPECT_DOUBLE_EQ(layer_activations_in_flight(plan, 0), 8 * 4 * 3.0);
  EXPECT_EQ(embedding_microbatches_in_flight(plan), 8);
  plan.training.global_batch_size = 24 * 16;  // m = 2p
  EXPECT_EQ(embedding_microbatches_in_flight(plan), 16);
}

TEST(MemoryPerStage, Gpt3OnSelene) {
  const core::Plan plan = gpt3_plan();
  const std::vector<int64_t> params = core::parameters_per_device_by_stage(plan);
  const std::vector<StageMemory> stages = memory_per_stage(plan);
  ASSERT_EQ(stages.size(), 8u);
  for (size_t i = 0; i < stages.size(); ++i) {
    EXPECT_EQ(stages[i].weights_bytes, 2 * params[i]);
    EXPECT_EQ(stages[i].gradients_bytes, 4 * params[i]);
    EXPECT_EQ(stages[i].optimizer_bytes, 12 * params[i]);
    EXPECT_EQ(stages[i].other_bytes, int64_t(1) << 30);
    EXPECT_EQ(stages[i].total_bytes(), stages[i].weights_bytes + stages[i].gradients_bytes +
                                           stages[i].optimizer_bytes + stages[i].activations_bytes +
                                           stages[i].other_bytes);
  }
  // Middle stages: only the layers' checkpointed inputs, (8 − i) microbatches × 12 layers, and
  // the one layer being recomputed: its whole set, sbh·(10 + 24/8 + 5·96·2048/(12288·8)) =
  // 23·sbh, of which 2·sbh is its checkpoint already counted.
  const int64_t sbh = 2048LL * 12288;
  const int64_t recomputing = 21 * sbh;
  EXPECT_EQ(stages[3].activations_bytes, 5 * 12 * 2 * sbh + recomputing);
  EXPECT_EQ(stages[0].activations_bytes, 8 * 12 * 2 * sbh + 8 * 3 * sbh + recomputing);
  EXPECT_EQ(stages[7].activations_bytes, 1 * 12 * 2 * sbh + 2048LL * (51200 / 8) * 6 + recomputing);
  const auto peak = std::max_element(
      stages.begin(), stages.end(),
      [](const auto& x, const auto& y) { return x.total_bytes() < y.total_bytes(); });
  EXPECT_TRUE(peak == stages.begin() || peak == stages.end() - 1);
  // 18 bytes × ~2.8 B parameters ≈ 51 GB, plus activations: fits an 80 GB A100 as in SC21.
  EXPECT_LT(peak->total_bytes(), int64_t(80) << 30);

  MemoryOptions options;
  options.reserved_bytes = 0;
  EXPECT_EQ(memory_per_stage(plan, options)[2].other_bytes, 0);
}

TEST(MemoryPerStage, MoreDataParallelNeverRaisesModelState) {
  core::Plan plan = gpt3_plan();
  plan.parallel.distributed_optimizer = true;
  auto model_state = [](const StageMemory& s) {
    return s.weights_bytes + s.gradients_bytes + s.optimizer_bytes;
  };
  std::vector<StageMemory> previous;
  for (int64_t dp : {1, 2, 3, 4, 6, 8, 12, 24, 48}) {
    plan.parallel.data_parallel = dp;
    plan.cluster.nodes = 8 * dp;  // 8 devices per node, 64 per replica
    plan.validate();
    const std::vector<StageMemory> stages = memory_per_stage(plan);
    for (size_t i = 0; i < previous.size(); ++i)
      EXPECT_LE(model_state(stages[i]), model_state(previous[i])) << "dp=" << dp << " stage " << i;
    previous = stages;
  }
}

TEST(MemoryPerStage, RecomputeOrdersActivations) {
  for (bool sp : {false, true}) {
    for (Schedule schedule : {Schedule::gpipe, Schedule::one_f_one_b}) {
      core::Plan plan = gpt3_plan();
      plan.parallel.sequence_parallel = sp;
      plan.parallel.schedule = schedule;
      auto stages_with = [&](Recompute r) {
        plan.parallel.recompute = r;
        return memory_per_stage(plan);
      };
      const auto none = stages_with(Recompute::none);
      const auto selective = stages_with(Recompute::selective);
      const auto full = stages_with(Recompute::full);
      for (size_t i = 0; i < none.size(); ++i) {
        EXPECT_GT(none[i].activations_bytes, selective[i].activations_bytes) << i;
        EXPECT_GT(selective[i].activations_bytes, full[i].activations_bytes) << i;
        EXPECT_EQ(none[i].weights_bytes, full[i].weights_bytes);
      }
    }
  }
}

TEST(MemoryPerStage, SinglePipelineStageHoldsEmbeddingAndLogits) {
  core::Plan plan = gpt3_plan();
  plan.model.num_layers = 2;
  plan.parallel.pipeline_parallel = 1;
  plan.parallel.data_parallel = 192;
  plan.parallel.sequence_parallel = true;
  plan.validate();  // m = 1536 / 192 = 8
  const auto stages = memory_per_stage(plan);
  ASSERT_EQ(stages.size(), 1u);
  const double sbh = 2048.0 * 12288;
  // Checkpointed inputs, the embedding, the logits, and the layer being recomputed: with SP its
  // whole set is sbh/8·(34 + 5·96·2048/12288) = 114/8·sbh, less its checkpoint 2/8·sbh.
  EXPECT_EQ(stages[0].activations_bytes,
            std::llround(1 * 2 * 2 * sbh / 8 + 1 * 3 * sbh / 8 + 2048.0 * 6400 * 6 + 112 * sbh / 8));
}

}  // namespace
}  // namespace loom::sim
