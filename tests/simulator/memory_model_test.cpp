#include "simulator/memory_model.hpp"

#include "core/error.hpp"
#include "core/model_arithmetic.hpp"
#include "core/model_presets.hpp"

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

// Llama 3 8B: h 4096, 32 heads of 128 in 8 query groups, SwiGLU of 14336, RMSNorm, s 8192.
core::ModelSpec llama3_8b() { return core::find_model_preset("llama3-8b").spec; }

double llama_activations(const core::ModelSpec& m, bool sp, Recompute r,
                         core::AttentionBackend attention = core::AttentionBackend::unfused) {
  return activation_bytes_per_layer(m, 1, 4, sp, r, DType::bf16, attention);
}

TEST(ActivationBytesPerLayer, LlamaCountsItsOwnWidths) {
  // Korthikanti's 24·s·b·h/t of the tensor-parallel part, from Llama's widths: q and the
  // projection's input 2 + 2, k and v 2 each at the groups' 1024 of 4096 (kept as the groups by
  // flash attention and by selective recompute), SwiGLU's [gate | up] 2·14336 and its output
  // 14336 at 2 bytes: 4 + 1 + 6·14336/4096 = 26 instead of 24.
  const core::ModelSpec m = llama3_8b();
  const double s = 8192, h = 4096, a = 32, t = 4, sbh = s * h;
  const double grouped = 4 + 4 * 1024 / h + 6 * 14336 / h;
  EXPECT_DOUBLE_EQ(grouped, 26.0);
  EXPECT_DOUBLE_EQ(llama_activations(m, true, Recompute::selective), sbh / t * (10 + grouped));
  EXPECT_DOUBLE_EQ(llama_activations(m, false, Recompute::selective), sbh * (10 + grouped / t));
  // Flash: no s² term, the groups kept as they are, plus the fp32 log-sum-exp.
  EXPECT_DOUBLE_EQ(llama_activations(m, true, Recompute::none, core::AttentionBackend::flash),
                   sbh / t * (10 + grouped) + 4 * a * s / t);
  // Megatron's unfused attention copies each group's k and v to its heads, and the products keep
  // the copies: k and v as wide as q.
  const double expanded = 4 + 4 + 6 * 14336 / h;
  EXPECT_DOUBLE_EQ(llama_activations(m, true, Recompute::none), sbh / t * (10 + expanded + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(llama_activations(m, false, Recompute::none), sbh * (10 + expanded / t + 5 * a * s / (h * t)));
  EXPECT_DOUBLE_EQ(llama_activations(m, true, Recompute::full), 2 * sbh / t);
}

TEST(ActivationBytesPerLayer, GroupedQueryAttentionKeepsSmallerKeysAndValues) {
  core::ModelSpec gqa = llama3_8b(), mha = llama3_8b();
  mha.num_query_groups.reset();
  const double sb = 8192, t = 4;
  for (bool sp : {false, true}) {
    SCOPED_TRACE(sp ? "sequence parallel" : "no sequence parallel");
    // k and v: 2 bytes each of 8 groups of 128, not of 32 heads: 2·2·s·b·(4096 − 1024)/t less.
    const double saved = 2 * 2 * sb * (4096 - 1024) / t;
    EXPECT_DOUBLE_EQ(llama_activations(mha, sp, Recompute::selective) - llama_activations(gqa, sp, Recompute::selective),
                     saved);
    EXPECT_DOUBLE_EQ(llama_activations(mha, sp, Recompute::none, core::AttentionBackend::flash) -
                         llama_activations(gqa, sp, Recompute::none, core::AttentionBackend::flash),
                     saved);
    // Unfused without recompute, the products keep each head's copy: no saving.
    EXPECT_DOUBLE_EQ(llama_activations(mha, sp, Recompute::none), llama_activations(gqa, sp, Recompute::none));
    EXPECT_DOUBLE_EQ(llama_activations(mha, sp, Recompute::full), llama_activations(gqa, sp, Recompute::full));
  }
}

TEST(ActivationBytesPerLayer, SwigluKeepsItsFusedInputAndItsOutput) {
  // Same ffn width: SwiGLU keeps [gate | up] (2f) and its output (f), GELU its input and output
  // (f each): one more 16-bit tensor of f, 2·s·b·f/t bytes.
  core::ModelSpec swiglu = llama3_8b(), gelu = llama3_8b();
  gelu.activation = core::Activation::gelu;
  const double sb = 8192, f = 14336, t = 4;
  for (bool sp : {false, true})
    for (Recompute r : {Recompute::none, Recompute::selective}) {
      EXPECT_DOUBLE_EQ(llama_activations(swiglu, sp, r) - llama_activations(gelu, sp, r), 2 * sb * f / t);
    }
  EXPECT_DOUBLE_EQ(llama_activations(swiglu, true, Recompute::full), llama_activations(gelu, true, Recompute::full));
}

TEST(ActivationBytesPerLayer, RmsnormKeepsItsInputAsLayernormDoes) {
  // Both norms keep their input (2·s·b·h each); LayerNorm's mean and 1/σ and RMSNorm's 1/rms are
  // O(s·b) and left out, as Korthikanti leaves them: the normalization changes nothing here.
  core::ModelSpec rms = llama3_8b(), layer = llama3_8b();
  layer.normalization = core::Normalization::layernorm;
  for (bool sp : {false, true})
    for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full})
      EXPECT_EQ(llama_activations(rms, sp, r), llama_activations(layer, sp, r));
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

TEST(MemoryPerStage, GroupedQueryAttentionNeedsLessThanMultiHead) {
  core::Plan gqa;
  gqa.model = llama3_8b();
  gqa.training.global_batch_size = 64;
  gqa.training.dtype = DType::bf16;
  gqa.cluster.nodes = 2;
  gqa.cluster.devices_per_node = 8;
  gqa.cluster.profile = "h100-80gb-dgx";
  gqa.parallel.tensor_parallel = 4;
  gqa.parallel.pipeline_parallel = 2;
  gqa.parallel.data_parallel = 2;
  gqa.parallel.micro_batch_size = 1;
  gqa.parallel.sequence_parallel = true;
  gqa.validate();
  for (core::AttentionBackend backend : {core::AttentionBackend::unfused, core::AttentionBackend::flash}) {
    for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full}) {
      gqa.parallel.attention_backend = backend;
      gqa.parallel.recompute = r;
      core::Plan mha = gqa;
      mha.model.num_query_groups.reset();
      const StageMemory grouped = stage_memory(gqa, 0), multi_head = stage_memory(mha, 0);
      SCOPED_TRACE(std::string(core::to_string(backend)) + " " + std::string(core::to_string(r)));
      EXPECT_LT(grouped.weights_bytes, multi_head.weights_bytes);  // smaller k and v projections
      EXPECT_LT(grouped.total_bytes(), multi_head.total_bytes());
      if (backend == core::AttentionBackend::flash || r == Recompute::selective)
        EXPECT_LT(grouped.activations_bytes, multi_head.activations_bytes);
      else
        EXPECT_EQ(grouped.activations_bytes, multi_head.activations_bytes);
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
