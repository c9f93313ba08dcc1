#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace loom::core {
namespace {

using ::testing::HasSubstr;

void expect_error(const Json& json, const std::string& fragment);

Plan interleaved_llama_plan() {
  Plan plan;
  plan.model = find_model_preset("llama3-70b").spec;
  plan.training.global_batch_size = 512;
  plan.training.dtype = DType::fp16;
  plan.training.lr = 1.5e-4;
  plan.training.min_lr = 1.5e-5;
  plan.training.seed = 42;
  plan.cluster = {16, 8, "h100-80gb-dgx", 2.5, {}};
  plan.parallel.tensor_parallel = 8;
  plan.parallel.pipeline_parallel = 4;
  plan.parallel.data_parallel = 4;
  plan.parallel.layers_per_virtual_stage = 5;
  plan.parallel.micro_batch_size = 1;
  plan.parallel.schedule = Schedule::interleaved;
  plan.parallel.recompute = Recompute::full;
  plan.parallel.sequence_parallel = true;
  plan.parallel.distributed_optimizer = true;
  return plan;
}

// Every Megatron-Core setting away from what an older plan means: flash attention, each overlap
// on, a bucket size given.
Plan megatron_core_plan() {
  Plan plan = interleaved_llama_plan();
  plan.parallel.attention_backend = AttentionBackend::flash;
  plan.parallel.overlap_grad_reduce = true;
  plan.parallel.overlap_param_gather = true;
  plan.parallel.tp_comm_overlap = true;
  plan.parallel.ddp_bucket_size = 25'000'000;
  return plan;
}

TEST(PlanJson, RoundTripsEveryField) {
  for (const Plan& plan : {default_plan(), interleaved_llama_plan(), megatron_core_plan()}) {
    plan.validate();
    const Json json = to_json(plan);
    EXPECT_EQ(plan_from_json(json), plan);
    EXPECT_EQ(read_plan_text(json.dump(2), "test"), plan);
  }
}

TEST(PlanJson, PartsRoundTrip) {
  for (const Plan& plan : {interleaved_llama_plan(), megatron_core_plan()}) {
    EXPECT_EQ(model_from_json(to_json(plan.model)), plan.model);
    EXPECT_EQ(train_from_json(to_json(plan.training)), plan.training);
    EXPECT_EQ(cluster_from_json(to_json(plan.cluster)), plan.cluster);
    ParallelPlan parallel = parallel_from_json(to_json(plan.parallel));
    parallel.data_parallel = plan.parallel.data_parallel;  // derived, never stored
    EXPECT_EQ(parallel, plan.parallel);
  }
}

TEST(PlanJson, WritesMegatronCoreSettingsUnderMegatronsNames) {
  const Json written = to_json(megatron_core_plan())["parallel"];
  EXPECT_EQ(written["attention-backend"], "flash");
  EXPECT_EQ(written["overlap-grad-reduce"], true);
  EXPECT_EQ(written["overlap-param-gather"], true);
  EXPECT_EQ(written["tp-comm-overlap"], true);
  EXPECT_EQ(written["ddp-bucket-size"], 25'000'000);
  // Megatron's default bucket rule is written as null, not as the number it gives for this dp,
  // so that the plan keeps following the rule when the cluster is edited.
  EXPECT_TRUE(to_json(interleaved_llama_plan())["parallel"]["ddp-bucket-size"].is_null());
}

TEST(PlanJson, AParallelSectionWithoutMegatronCoreKeysMeansUnfusedAttentionWithoutOverlap) {
  Json json = to_json(megatron_core_plan());
  for (const char* key : {"attention-backend", "overlap-grad-reduce", "overlap-param-gather", "tp-comm-overlap",
                          "ddp-bucket-size"})
    ASSERT_EQ(json["parallel"].erase(key), 1u) << key;
  const Plan plan = plan_from_json(json);
  EXPECT_EQ(plan.parallel.attention_backend, AttentionBackend::unfused);
  EXPECT_FALSE(plan.parallel.overlap_grad_reduce);
  EXPECT_FALSE(plan.parallel.overlap_param_gather);
  EXPECT_FALSE(plan.parallel.tp_comm_overlap);
  EXPECT_FALSE(plan.parallel.ddp_bucket_size.has_value());
  Plan older_meaning = megatron_core_plan();
  older_meaning.parallel.attention_backend = AttentionBackend::unfused;
  older_meaning.parallel.overlap_grad_reduce = older_meaning.parallel.overlap_param_gather = false;
  older_meaning.parallel.tp_comm_overlap = false;
  older_meaning.parallel.ddp_bucket_size.reset();
  EXPECT_EQ(plan, older_meaning);
}

TEST(PlanJson, MegatronCoreSettingsAreCheckedByType) {
  Json json = to_json(megatron_core_plan());
  json["parallel"]["overlap-grad-reduce"] = "yes";
  expect_error(json, "parallel.overlap-grad-reduce: expected true or false, got a string (\"yes\")");
  json = to_json(megatron_core_plan());
  json["parallel"]["attention-backend"] = "fused";  // a Megatron backend Loom does not model
  expect_error(json, "parallel.attention-backend=\"fused\" is not valid; expected one of unfused, flash");
  json = to_json(megatron_core_plan());
  json["parallel"]["ddp-bucket-size"] = 4e7;
  expect_error(json, "parallel.ddp-bucket-size: expected an integer");
  json["parallel"]["ddp-bucket-size"] = -1;
  expect_error(json, "ddp-bucket-size=-1 must be a number of parameters from 1 to");
}

TEST(PlanJson, UsesMegatronKeysAndNeverStoresDataParallelSize) {
  const Json json = to_json(default_plan());
  EXPECT_EQ(json["format"], "loom-plan");
  EXPECT_EQ(json["version"], 1);
  // The default plan pins its vocabulary and, with multi-head attention, has no query groups.
  for (const char* key : {"num-layers", "hidden-size", "num-attention-heads", "ffn-hidden-size",
                          "padded-vocab-size", "seq-length", "untie-embeddings-and-output-weights"})
    EXPECT_TRUE(json["model"].contains(key)) << key;
  for (const char* key : {"num-query-groups", "vocab-size", "make-vocab-size-divisible-by"})
    EXPECT_FALSE(json["model"].contains(key)) << key;
  const Json llama = to_json(interleaved_llama_plan().model);  // grouped-query, vocabulary derived per tp
  for (const char* key : {"num-query-groups", "vocab-size", "make-vocab-size-divisible-by"})
    EXPECT_TRUE(llama.contains(key)) << key;
  EXPECT_FALSE(llama.contains("padded-vocab-size"));
  for (const char* key : {"global-batch-size", "dtype", "lr", "min-lr", "lr-warmup-iters", "train-iters",
                          "weight-decay", "clip-grad", "seed"})
    EXPECT_TRUE(json["training"].contains(key)) << key;
  for (const char* key : {"nodes", "devices-per-node", "profile", "price-per-device-hour"})
    EXPECT_TRUE(json["cluster"].contains(key)) << key;
  for (const char* key : {"tensor-model-parallel-size", "pipeline-model-parallel-size",
                          "num-layers-per-virtual-pipeline-stage", "micro-batch-size", "schedule",
                          "recompute-granularity", "sequence-parallel", "use-distributed-optimizer",
                          "attention-backend", "overlap-grad-reduce", "overlap-param-gather", "tp-comm-overlap",
                          "ddp-bucket-size"})
    EXPECT_TRUE(json["parallel"].contains(key)) << key;
  EXPECT_FALSE(json["parallel"].contains("data-parallel-size"));
}

TEST(PlanJson, DerivesDataParallelSizeFromTheCluster) {
  Json json = to_json(default_plan());
  json["cluster"]["nodes"] = 4;  // 32 devices / (tp 2 × pp 2)
  EXPECT_EQ(plan_from_json(json).parallel.data_parallel, 8);
  json["parallel"]["data-parallel-size"] = 8;
  EXPECT_THROW(plan_from_json(json), InvalidInput);
}

TEST(PlanJson, OptionalModelKeysTakeGptDefaults) {
  const Json json = {{"num-layers", 2}, {"hidden-size", 64}, {"num-attention-heads", 4},
                               {"padded-vocab-size", 128}, {"seq-length", 32}};
  const ModelSpec model = model_from_json(json);
  EXPECT_FALSE(model.num_query_groups.has_value());
  EXPECT_EQ(model.query_groups(), 4);  // one group per head
  EXPECT_EQ(model.ffn_hidden_size, 256);
  EXPECT_TRUE(model.tied_embeddings());
  EXPECT_EQ(model.activation, Activation::gelu);
}

void expect_error(const Json& json, const std::string& fragment) {
  try {
    plan_from_json(json);
    ADD_FAILURE() << "no error; expected one containing: " << fragment;
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), HasSubstr(fragment));
  }
}

TEST(PlanJson, RejectsUnknownKeysWithTheirPath) {
  Json json = to_json(default_plan());
  json["model"]["hiden-size"] = 768;
  expect_error(json, "model.hiden-size is not a known key; expected one of:");
}

TEST(PlanJson, RejectsWrongTypesNamingTheField) {
  Json json = to_json(default_plan());
  json["model"]["hidden-size"] = "768";
  expect_error(json, "model.hidden-size: expected an integer, got a string (\"768\")");
  json = to_json(default_plan());
  json["parallel"]["sequence-parallel"] = 1;
  expect_error(json, "parallel.sequence-parallel: expected true or false, got an integer (1)");
  json = to_json(default_plan());
  json["training"]["global-batch-size"] = 64.5;
  expect_error(json, "training.global-batch-size: expected an integer, got a fractional number (64.5)");
}

TEST(PlanJson, RejectsMissingSectionsAndKeys) {
  Json json = to_json(default_plan());
  json.erase("cluster");
  expect_error(json, "cluster is missing; expected an object");
  json = to_json(default_plan());
  json["model"].erase("num-layers");
  expect_error(json, "model.num-layers is missing; expected an integer");
}

TEST(PlanJson, RejectsOtherFormatsAndVersions) {
  Json json = to_json(default_plan());
  json["version"] = 2;
  expect_error(json, "version=2 is not supported");
  json["version"] = 1;
  json["format"] = "megatron-args";
  expect_error(json, "is not a Loom plan");
}

TEST(PlanJson, MalformedJsonReportsLineAndColumn) {
  try {
    read_plan_text("{\n  \"model\": {\n    \"num-layers\": 12,,\n", "plan.json");
    FAIL() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("plan.json:3:22: malformed JSON"));
  }
}

TEST(PlanJson, EnumSpellingsAreChecked) {
  Json json = to_json(default_plan());
  json["parallel"]["schedule"] = "1F1B";
  expect_error(json, "parallel.schedule=\"1F1B\" is not valid; expected one of gpipe, 1f1b, interleaved");
  json = to_json(default_plan());
  json["parallel"]["recompute-granularity"] = "partial";
  expect_error(json, "expected one of none, selective, full");
}

TEST(PlanJson, MissingFileIsInvalidInput) {
  EXPECT_THROW(read_plan_file("/nonexistent/plan.json"), InvalidInput);
}

}  // namespace
}  // namespace loom::core
