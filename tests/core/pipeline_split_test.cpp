// Uneven pipeline splits (issue 23): every way of giving the layers per stage, its refusals, and
// the layers each virtual stage gets, checked against Megatron-LM's get_num_layers_to_build
// (megatron/core/transformer/transformer_block.py): first/last ranks take their given counts and
// the others share the rest; each rank's layers split evenly over its chunks; account-for-embedding
// /loss count the embedding / the loss as one layer of an even split and build one layer fewer in
// the first / last virtual stage.

#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

namespace loom::core {
namespace {

using ::testing::HasSubstr;
using Layers = std::vector<int64_t>;

// llama2-7b (32 layers) on 8 devices: tp 2 × pp 4, dp 1, 32 microbatches. Valid until changed.
Plan split_plan() {
  Plan plan;
  plan.model = find_model_preset("llama2-7b").spec;
  plan.training.global_batch_size = 64;
  plan.cluster = {1, 8, "a100-80gb-dgx", std::nullopt, {}};
  plan.parallel.tensor_parallel = 2;
  plan.parallel.pipeline_parallel = 4;
  plan.parallel.micro_batch_size = 2;
  derive_data_parallel(plan);
  return plan;
}

Plan split_changed(const std::function<void(Plan&)>& change) {
  Plan plan = split_plan();
  change(plan);
  derive_data_parallel(plan);
  return plan;
}

std::string split_violation(const std::function<void(Plan&)>& change) {
  try {
    split_changed(change).validate();
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "(valid)";
}

// The layers of each virtual stage of a valid plan.
Layers stage_layers(const std::function<void(Plan&)>& change) {
  const Plan plan = split_changed(change);
  plan.validate();
  return plan.virtual_stage_layers();
}

void split_interleave(Plan& plan, int64_t virtual_stages) {
  plan.parallel.schedule = Schedule::interleaved;
  plan.parallel.virtual_stages_per_rank = virtual_stages;
}

TEST(PipelineSplit, EvenByDefault) {
  const Plan plan = split_plan();
  EXPECT_EQ(plan.virtual_stage_layers(), (Layers{8, 8, 8, 8}));
  EXPECT_EQ(plan.pipeline_rank_layers(), (Layers{8, 8, 8, 8}));
  EXPECT_TRUE(plan.even_layer_split());
  EXPECT_EQ(plan.pipeline_rank_groups(), (Layers{0, 0, 0, 0}));
}

TEST(PipelineSplit, LoomsGeneralFormGivesEachStage) {
  const Plan plan = split_changed([](Plan& p) { p.parallel.pipeline_layer_split = {7, 9, 9, 7}; });
  EXPECT_NO_THROW(plan.validate());
  EXPECT_EQ(plan.virtual_stage_layers(), (Layers{7, 9, 9, 7}));
  EXPECT_EQ(plan.pipeline_rank_layers(), (Layers{7, 9, 9, 7}));
  EXPECT_FALSE(plan.even_layer_split());
  // An even split written out is still even.
  EXPECT_TRUE(split_changed([](Plan& p) { p.parallel.pipeline_layer_split = {8, 8, 8, 8}; }).even_layer_split());
  // The first and last stage may hold only the embedding / only the loss.
  EXPECT_EQ(stage_layers([](Plan& p) { p.parallel.pipeline_layer_split = {0, 11, 11, 10}; }), (Layers{0, 11, 11, 10}));
  EXPECT_EQ(stage_layers([](Plan& p) { p.parallel.pipeline_layer_split = {10, 11, 11, 0}; }), (Layers{10, 11, 11, 0}));
}

TEST(PipelineSplit, InterleavedSplitListsEveryVirtualStageInModelOrder) {
  // 8 entries with pp 4: 2 chunks per rank; entry c·pp + r is chunk c of rank r.
  const Plan plan = split_changed([](Plan& p) {
    p.parallel.schedule = Schedule::interleaved;
    p.parallel.pipeline_layer_split = {3, 4, 4, 5, 4, 4, 4, 4};
  });
  EXPECT_NO_THROW(plan.validate());
  EXPECT_EQ(plan.virtual_stages(), 2);
  EXPECT_EQ(plan.virtual_stage_layers(), (Layers{3, 4, 4, 5, 4, 4, 4, 4}));
  EXPECT_EQ(plan.pipeline_rank_layers(), (Layers{7, 8, 8, 9}));
  // num-virtual-stages-per-pipeline-rank may be given beside it when it agrees.
  EXPECT_EQ(split_violation([](Plan& p) {
              split_interleave(p, 2);
              p.parallel.pipeline_layer_split = {3, 4, 4, 5, 4, 4, 4, 4};
            }),
            "(valid)");
}

TEST(PipelineSplit, MegatronFirstAndLastStageLayers) {
  EXPECT_EQ(stage_layers([](Plan& p) {
              p.parallel.first_stage_layers = 6;
              p.parallel.last_stage_layers = 6;
            }),
            (Layers{6, 10, 10, 6}));
  EXPECT_EQ(stage_layers([](Plan& p) { p.parallel.first_stage_layers = 5; }), (Layers{5, 9, 9, 9}));
  EXPECT_EQ(stage_layers([](Plan& p) { p.parallel.last_stage_layers = 2; }), (Layers{10, 10, 10, 2}));
  // pp 2 with both given: nothing is left for other ranks, and nothing needs to be.
  EXPECT_EQ(stage_layers([](Plan& p) {
              p.parallel.pipeline_parallel = 2;
              p.parallel.first_stage_layers = 17;
              p.parallel.last_stage_layers = 15;
            }),
            (Layers{17, 15}));
}

TEST(PipelineSplit, MegatronFirstAndLastWithVirtualStagesSplitEachRankOverItsChunks) {
  // As get_num_layers_to_build: first 6 / 2 chunks = 3 per chunk, middle 10 / 2 = 5.
  const Plan plan = split_changed([](Plan& p) {
    split_interleave(p, 2);
    p.parallel.first_stage_layers = 6;
    p.parallel.last_stage_layers = 6;
  });
  EXPECT_NO_THROW(plan.validate());
  EXPECT_EQ(plan.virtual_stage_layers(), (Layers{3, 5, 5, 3, 3, 5, 5, 3}));
  EXPECT_EQ(plan.pipeline_rank_layers(), (Layers{6, 10, 10, 6}));
}

TEST(PipelineSplit, MegatronAccountForEmbeddingAndLoss) {
  // 30 layers + embedding + loss = 32 = 8 per stage; the first and last build one fewer.
  EXPECT_EQ(stage_layers([](Plan& p) {
              p.model.num_layers = 30;
              p.parallel.account_for_embedding = true;
              p.parallel.account_for_loss = true;
            }),
            (Layers{7, 8, 8, 7}));
  EXPECT_EQ(stage_layers([](Plan& p) {
              p.model.num_layers = 31;
              p.parallel.account_for_embedding = true;
            }),
            (Layers{7, 8, 8, 8}));
  EXPECT_EQ(stage_layers([](Plan& p) {
              p.model.num_layers = 31;
              p.parallel.account_for_loss = true;
            }),
            (Layers{8, 8, 8, 7}));
  // With virtual stages only the first chunk of rank 0 and the last chunk of rank pp-1 lose one.
  EXPECT_EQ(stage_layers([](Plan& p) {
              p.model.num_layers = 30;
              split_interleave(p, 2);
              p.parallel.account_for_embedding = true;
              p.parallel.account_for_loss = true;
            }),
            (Layers{3, 4, 4, 4, 4, 4, 4, 3}));
  // num-layers-per-virtual-pipeline-stage counts the accounted layers too (Megatron's arguments.py).
  const Plan by_layers = split_changed([](Plan& p) {
    p.model.num_layers = 30;
    p.parallel.schedule = Schedule::interleaved;
    p.parallel.layers_per_virtual_stage = 4;
    p.parallel.account_for_embedding = true;
    p.parallel.account_for_loss = true;
  });
  EXPECT_NO_THROW(by_layers.validate());
  EXPECT_EQ(by_layers.virtual_stages(), 2);
  EXPECT_EQ(by_layers.virtual_stage_layers(), (Layers{3, 4, 4, 4, 4, 4, 4, 3}));
}

TEST(PipelineSplitRefusal, SplitMustSumToNumLayers) {
  EXPECT_EQ(split_violation([](Plan& p) { p.parallel.pipeline_layer_split = {7, 9, 9, 6}; }),
            "pipeline-layer-split=[7, 9, 9, 6] sums to 31 layers; it must sum to num-layers=32");
}

TEST(PipelineSplitRefusal, SplitNeedsOneEntryPerStage) {
  EXPECT_EQ(split_violation([](Plan& p) { p.parallel.pipeline_layer_split = {16, 16}; }),
            "pipeline-layer-split has 2 entries; expected one per pipeline stage (pipeline-model-parallel-size=4)");
  EXPECT_THAT(split_violation([](Plan& p) {
                p.parallel.schedule = Schedule::interleaved;
                p.parallel.pipeline_layer_split = {6, 6, 5, 5, 5, 5};
              }),
              HasSubstr("pipeline-layer-split has 6 entries; with schedule=interleaved it lists every virtual stage"));
  EXPECT_THAT(split_violation([](Plan& p) {
                split_interleave(p, 3);
                p.parallel.pipeline_layer_split = {3, 4, 4, 5, 4, 4, 4, 4};
              }),
              HasSubstr("but num-virtual-stages-per-pipeline-rank=3"));
  // pp entries with the interleaved schedule: one chunk per rank, which is no interleaving.
  EXPECT_THAT(split_violation([](Plan& p) {
                p.parallel.schedule = Schedule::interleaved;
                p.parallel.pipeline_layer_split = {8, 8, 8, 8};
              }),
              HasSubstr("needs at least 2 virtual stages per pipeline rank (this plan has 1)"));
}

TEST(PipelineSplitRefusal, OnlyTheFirstAndLastStageMayBeEmpty) {
  EXPECT_THAT(split_violation([](Plan& p) { p.parallel.pipeline_layer_split = {8, 0, 16, 8}; }),
              HasSubstr("pipeline-layer-split[1]=0 must be from 1 to num-layers=32"));
  EXPECT_THAT(split_violation([](Plan& p) { p.parallel.pipeline_layer_split = {-1, 11, 11, 11}; }),
              HasSubstr("pipeline-layer-split[0]=-1 must be from 0 to num-layers=32"));
}

TEST(PipelineSplitRefusal, FirstAndLastNeedAPipeline) {
  EXPECT_EQ(split_violation([](Plan& p) {
              p.parallel.pipeline_parallel = 1;
              p.parallel.first_stage_layers = 4;
            }),
            "decoder-first/last-pipeline-num-layers need pipeline-model-parallel-size > 1 (it is 1)");
}

TEST(PipelineSplitRefusal, OneWayOfGivingTheSplit) {
  EXPECT_THAT(split_violation([](Plan& p) {
                p.parallel.first_stage_layers = 6;
                p.parallel.account_for_loss = true;
              }),
              HasSubstr("decoder-first/last-pipeline-num-layers cannot be combined with "
                        "account-for-embedding/loss-in-pipeline-split"));
  EXPECT_THAT(split_violation([](Plan& p) {
                p.parallel.pipeline_layer_split = {7, 9, 9, 7};
                p.parallel.last_stage_layers = 7;
              }),
              HasSubstr("pipeline-layer-split=[7, 9, 9, 7] gives every stage's layers and cannot be combined with "
                        "decoder-first/last-pipeline-num-layers"));
  EXPECT_THAT(split_violation([](Plan& p) {
                p.parallel.pipeline_layer_split = {7, 9, 9, 7};
                p.parallel.account_for_embedding = true;
              }),
              HasSubstr("cannot be combined with account-for-embedding/loss-in-pipeline-split"));
}

TEST(PipelineSplitRefusal, SplitWithLayersPerVirtualStage) {
  EXPECT_THAT(split_violation([](Plan& p) {
                p.parallel.schedule = Schedule::interleaved;
                p.parallel.layers_per_virtual_stage = 4;
                p.parallel.pipeline_layer_split = {3, 4, 4, 5, 4, 4, 4, 4};
              }),
              HasSubstr("num-layers-per-virtual-pipeline-stage=4 cannot be used with pipeline-layer-split"));
}

TEST(PipelineSplitRefusal, VirtualStagesGivenOnceAndOnlyWhenInterleaved) {
  EXPECT_THAT(split_violation([](Plan& p) {
                split_interleave(p, 2);
                p.parallel.layers_per_virtual_stage = 4;
              }),
              HasSubstr("both give the virtual stages; give one"));
  EXPECT_THAT(split_violation([](Plan& p) { p.parallel.virtual_stages_per_rank = 2; }),
              HasSubstr("num-virtual-stages-per-pipeline-rank=2 is only used with schedule=interleaved"));
  // Megatron requires num-virtual-stages-per-pipeline-rank with uneven first/last stages.
  EXPECT_THAT(split_violation([](Plan& p) {
                p.parallel.schedule = Schedule::interleaved;
                p.parallel.layers_per_virtual_stage = 2;
                p.parallel.first_stage_layers = 6;
              }),
              HasSubstr("needs num-virtual-stages-per-pipeline-rank, not num-layers-per-virtual-pipeline-stage"));
}

TEST(PipelineSplitRefusal, FirstAndLastMustLeaveAnEvenRestThatSplitsOverTheChunks) {
  EXPECT_THAT(split_violation([](Plan& p) { p.parallel.first_stage_layers = 6; }),
              HasSubstr("the 26 layers left by decoder-first/last-pipeline-num-layers do not split evenly over the "
                        "other 3 pipeline stage(s)"));
  EXPECT_THAT(split_violation([](Plan& p) {
                p.parallel.first_stage_layers = 20;
                p.parallel.last_stage_layers = 12;
              }),
              HasSubstr("are too few"));
  EXPECT_THAT(split_violation([](Plan& p) { p.parallel.first_stage_layers = 33; }),
              HasSubstr("decoder-first-pipeline-num-layers=33 must be from 1 to num-layers=32"));
  // 5 + 11 + 11 + 5: 5 layers do not split over 2 chunks.
  EXPECT_EQ(split_violation([](Plan& p) {
              split_interleave(p, 2);
              p.parallel.first_stage_layers = 5;
              p.parallel.last_stage_layers = 5;
            }),
            "with 2 virtual stages per pipeline rank each rank's layers must split evenly over them: first stage 5, "
            "last stage 5, the others 11 each");
}

TEST(PipelineSplitRefusal, AccountedLayersMustDivideByTheStages) {
  EXPECT_EQ(split_violation([](Plan& p) {
              p.parallel.account_for_embedding = true;
              p.parallel.account_for_loss = true;
            }),
            "num-layers=32 + 1 (the embedding) + 1 (the loss) = 34 is not divisible by pipeline-model-parallel-size=4");
  EXPECT_EQ(split_violation([](Plan& p) {
              p.model.num_layers = 34;
              split_interleave(p, 4);
              p.parallel.account_for_embedding = true;
              p.parallel.account_for_loss = true;
            }),
            "num-layers=34 + 1 (the embedding) + 1 (the loss) = 36 is not divisible by pipeline-model-parallel-size=4 "
            "× 4 virtual stages");
}

TEST(PipelineSplitJson, KeysRoundTripAndAreWrittenOnlyWhenSet) {
  for (const Plan& plan : {split_changed([](Plan& p) { p.parallel.pipeline_layer_split = {7, 9, 9, 7}; }),
                           split_changed([](Plan& p) {
                             split_interleave(p, 2);
                             p.parallel.first_stage_layers = 6;
                             p.parallel.last_stage_layers = 6;
                           }),
                           split_changed([](Plan& p) {
                             p.model.num_layers = 30;
                             p.parallel.account_for_embedding = true;
                             p.parallel.account_for_loss = true;
                           })}) {
    plan.validate();
    EXPECT_EQ(read_plan_text(to_json(plan).dump(2), "test"), plan);
  }
  const Json even = to_json(split_plan())["parallel"];
  for (const char* key : {"pipeline-layer-split", "decoder-first-pipeline-num-layers", "decoder-last-pipeline-num-layers",
                          "account-for-embedding-in-pipeline-split", "account-for-loss-in-pipeline-split",
                          "num-virtual-stages-per-pipeline-rank"})
    EXPECT_FALSE(even.contains(key)) << key;
  const Json split = to_json(split_changed([](Plan& p) { p.parallel.pipeline_layer_split = {7, 9, 9, 7}; }))["parallel"];
  EXPECT_EQ(split["pipeline-layer-split"], Json({7, 9, 9, 7}));
}

TEST(PipelineSplitJson, AnEmptySplitIsRefusedAndNullIsEven) {
  Json json = to_json(split_plan());
  json["parallel"]["pipeline-layer-split"] = Json::array();
  try {
    read_plan_text(json.dump(), "test");
    ADD_FAILURE() << "an empty pipeline-layer-split was accepted";
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("parallel.pipeline-layer-split is empty"));
  }
  json["parallel"]["pipeline-layer-split"] = nullptr;
  EXPECT_TRUE(read_plan_text(json.dump(), "test").even_layer_split());
}

}  // namespace
}  // namespace loom::core
