#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

namespace loom::core {
namespace {

using ::testing::HasSubstr;

// A plan for a 32-head model on 8 devices that is valid until a test changes it.
Plan llama_plan() {
  Plan plan;
  plan.model = find_model_preset("llama2-7b").spec;  // 32 layers, 32 heads, vocab 32000
  plan.training.global_batch_size = 64;
  plan.cluster = {1, 8, "a100-80gb-dgx", std::nullopt, {}};
  plan.parallel.tensor_parallel = 2;
  plan.parallel.pipeline_parallel = 2;
  plan.parallel.micro_batch_size = 2;
  derive_data_parallel(plan);
  return plan;
}

std::string violation(const std::function<void(Plan&)>& change) {
  Plan plan = llama_plan();
  change(plan);
  try {
    derive_data_parallel(plan);
    plan.validate();
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "(valid)";
}

TEST(PlanValidation, BasePlanIsValid) {
  EXPECT_EQ(violation([](Plan&) {}), "(valid)");
  EXPECT_NO_THROW(default_plan().validate());
}

TEST(PlanValidation, TensorParallelMustDivideHeadsNamingBothNumbers) {
  EXPECT_EQ(violation([](Plan& p) { p.parallel.tensor_parallel = 3; }),
            "tensor-model-parallel-size=3 does not divide num-attention-heads=32");
}

TEST(PlanValidation, TensorParallelMustDivideQueryGroupsAndFfnAndVocab) {
  EXPECT_THAT(violation([](Plan& p) {
                p.model.num_query_groups = 2;
                p.parallel.tensor_parallel = 4;
                p.parallel.pipeline_parallel = 1;
              }),
              HasSubstr("tensor-model-parallel-size=4 does not divide num-query-groups=2"));
  EXPECT_THAT(violation([](Plan& p) { p.model.ffn_hidden_size = 11007; }),
              HasSubstr("does not divide ffn-hidden-size=11007"));
  EXPECT_THAT(violation([](Plan& p) { p.model.padded_vocab_size = 32001; }),
              HasSubstr("tensor-model-parallel-size=2 does not divide padded-vocab-size=32001; pad the "
                        "vocabulary to a multiple of 256 (e.g. 32256)"));
}

TEST(PlanValidation, DevicesMustBeSplitExactly) {
  EXPECT_THAT(violation([](Plan& p) {
                p.parallel.tensor_parallel = 4;
                p.parallel.pipeline_parallel = 4;
                p.cluster.devices_per_node = 12;
              }),
              HasSubstr("tensor-model-parallel-size=4 × pipeline-model-parallel-size=4 = 16 does not "
                        "divide the 12 devices"));
}

TEST(PlanValidation, PipelineMustDivideLayers) {
  EXPECT_EQ(violation([](Plan& p) {
              p.parallel.pipeline_parallel = 4;
              p.model.num_layers = 30;
            }),
            "pipeline-model-parallel-size=4 does not divide num-layers=30");
}

TEST(PlanValidation, GlobalBatchMustSplitIntoMicrobatches) {
  EXPECT_EQ(violation([](Plan& p) { p.training.global_batch_size = 6; }),
            "global-batch-size=6 is not divisible by micro-batch-size=2 × data-parallel-size=2 = 4");
}

TEST(PlanValidation, SequenceParallelNeedsTensorParallel) {
  EXPECT_THAT(violation([](Plan& p) {
                p.parallel.tensor_parallel = 1;
                p.parallel.sequence_parallel = true;
              }),
              HasSubstr("sequence-parallel=true needs tensor-model-parallel-size > 1"));
  EXPECT_THAT(violation([](Plan& p) {
                p.parallel.sequence_parallel = true;
                p.model.seq_length = 4095;
              }),
              HasSubstr("to divide seq-length=4095"));
}

TEST(PlanValidation, InterleavedScheduleRules) {
  auto interleaved = [](Plan& p) {
    p.parallel.schedule = Schedule::interleaved;
    p.parallel.layers_per_virtual_stage = 4;  // 16 layers per stage → 4 virtual stages
  };
  EXPECT_EQ(violation(interleaved), "(valid)");
  EXPECT_THAT(violation([&](Plan& p) {
                interleaved(p);
                p.parallel.layers_per_virtual_stage.reset();
              }),
              HasSubstr("schedule=interleaved needs num-layers-per-virtual-pipeline-stage"));
  EXPECT_THAT(violation([&](Plan& p) {
                interleaved(p);
                p.parallel.layers_per_virtual_stage = 5;
              }),
              HasSubstr("num-layers-per-virtual-pipeline-stage=5 does not divide the 16 layers per pipeline stage"));
  EXPECT_THAT(violation([&](Plan& p) {
                interleaved(p);
                p.parallel.layers_per_virtual_stage = 16;
              }),
              HasSubstr("leaves 1 virtual stage per pipeline rank"));
  EXPECT_THAT(violation([&](Plan& p) {
                interleaved(p);
                p.parallel.pipeline_parallel = 1;
              }),
              HasSubstr("schedule=interleaved needs pipeline-model-parallel-size > 1"));
  EXPECT_THAT(violation([&](Plan& p) {
                interleaved(p);
                p.training.global_batch_size = 4;  // 1 microbatch, pp 2
              }),
              HasSubstr("schedule=interleaved needs the 1 microbatches per step"));
  EXPECT_THAT(violation([](Plan& p) { p.parallel.layers_per_virtual_stage = 4; }),
              HasSubstr("is only used with schedule=interleaved"));
}

TEST(PlanValidation, PartsValidateThemselves) {
  EXPECT_EQ(violation([](Plan& p) { p.model.num_layers = 0; }), "num-layers=0 must be a positive integer");
  EXPECT_EQ(violation([](Plan& p) { p.model.hidden_size = 4095; }),
            "num-attention-heads=32 does not divide hidden-size=4095");
  EXPECT_THAT(violation([](Plan& p) { p.training.min_lr = 1.0; }), HasSubstr("min-lr=1 must lie between 0 and lr="));
  EXPECT_THAT(violation([](Plan& p) { p.training.lr_warmup_iters = 5; }),
              HasSubstr("lr-warmup-iters=5 must lie between 0 and train-iters=1"));
  EXPECT_EQ(violation([](Plan& p) { p.cluster.nodes = -1; }), "nodes=-1 must be a positive integer");
  EXPECT_THAT(violation([](Plan& p) { p.cluster.profile.clear(); }), HasSubstr("profile is empty"));
  EXPECT_EQ(violation([](Plan& p) { p.parallel.micro_batch_size = 0; }),
            "micro-batch-size=0 must be a positive integer");
}

TEST(PlanValidation, DerivedCounts) {
  Plan plan = llama_plan();
  EXPECT_EQ(plan.parallel.data_parallel, 2);
  EXPECT_EQ(plan.microbatches(), 16);
  EXPECT_EQ(plan.pipeline_rank_layers(), (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(plan.virtual_stages(), 1);
  plan.parallel.schedule = Schedule::interleaved;
  plan.parallel.layers_per_virtual_stage = 2;
  EXPECT_EQ(plan.virtual_stages(), 8);
}

}  // namespace
}  // namespace loom::core
