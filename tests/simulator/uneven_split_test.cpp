// Balance by hardware (issue 23) in the simulator: each pipeline stage is timed and its memory
// counted with its own layers (pipeline-layer-split and Megatron's uneven first/last stages), and
// on a mixed cluster with its own device group's profile and memory.

#include "simulator/prediction.hpp"

#include "core/error.hpp"
#include "core/model_arithmetic.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"
#include "core/schedule.hpp"
#include "simulator/memory_model.hpp"
#include "simulator/step_costs.hpp"
#include "simulator/trace.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace loom::sim {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kGiB = int64_t(1) << 30;

double total(const OpsTime& t) { return t.compute_s + t.comm_s; }

// gpt3-1.3b (24 layers) on one node: tp 2, pp 4, dp 1.
core::Plan gpt_plan() {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt3-1.3b").spec;
  plan.training.global_batch_size = 32;
  plan.cluster = {1, 8, "a100-80gb-dgx", std::nullopt, {}};
  plan.parallel.tensor_parallel = 2;
  plan.parallel.pipeline_parallel = 4;
  plan.parallel.micro_batch_size = 2;
  core::derive_data_parallel(plan);
  plan.validate();
  return plan;
}

core::ClusterSpec mixed_cluster(std::vector<core::DeviceGroup> groups) {
  core::ClusterSpec cluster;
  cluster.groups = std::move(groups);
  cluster.summarise_groups();
  return cluster;
}

// An A100 whose devices hold 40 GiB, for memory checks against the smaller group.
core::Profile a100_40gb() {
  core::Profile profile = core::resolve_profile("a100-80gb-dgx");
  profile.name = "a100-40gb-test";
  profile.device.memory_bytes = 40 * kGiB;
  return profile;
}

TEST(UnevenSplit, StageTimesAreTheSumOfTheirLayers) {
  core::Plan plan = gpt_plan();
  plan.parallel.pipeline_layer_split = {5, 7, 8, 4};
  plan.validate();
  const core::Profile profile = core::resolve_profile("a100-80gb-dgx");
  const CostModel costs(profile, plan.training.dtype, plan.cluster.devices_per_node);
  const LayerCosts layers = layer_costs(plan, costs);
  const StepCosts step = step_costs(plan, costs, layers);
  const std::vector<int64_t> split = plan.parallel.pipeline_layer_split;
  const double layer_forward = total(layers.layer_forward);
  const double layer_backward = total(layers.layer_backward) + total(layers.layer_recompute);
  for (size_t s = 0; s < split.size(); ++s) {
    SCOPED_TRACE(s);
    const bool first = s == 0, last = s + 1 == split.size();
    const double forward_ends = (first ? total(layers.embedding_forward) : total(layers.pipeline_gather)) +
                                (last ? total(layers.output_forward) : 0.0);
    const double backward_ends = (first ? total(layers.embedding_backward) : 0.0) +
                                 (last ? total(layers.output_backward) : total(layers.pipeline_gather));
    EXPECT_NEAR(step.forward[s].total_s() - forward_ends, double(split[s]) * layer_forward, 1e-12);
    EXPECT_NEAR(step.backward[s].total_s() - backward_ends, double(split[s]) * layer_backward, 1e-12);
  }
  // A stage with twice the layers of another, neither at an end, takes twice their time.
  core::Plan doubled = gpt_plan();
  doubled.parallel.pipeline_layer_split = {6, 4, 8, 6};
  const StepCosts d = step_costs(doubled, costs, layers);
  EXPECT_NEAR(d.forward[2].total_s() - total(layers.pipeline_gather),
              2 * (d.forward[1].total_s() - total(layers.pipeline_gather)), 1e-12);
}

TEST(UnevenSplit, OptimizerAndGradientsFollowTheStageParameters) {
  core::Plan even = gpt_plan(), uneven = gpt_plan();
  uneven.parallel.pipeline_layer_split = {6, 3, 9, 6};
  uneven.validate();
  const core::Profile profile = core::resolve_profile("a100-80gb-dgx");
  const StepCosts a = step_costs(even, CostModel(profile, even.training.dtype, 8));
  const StepCosts b = step_costs(uneven, CostModel(profile, uneven.training.dtype, 8));
  EXPECT_LT(b.optimizer_s[1], a.optimizer_s[1]) << "3 layers instead of 6";
  EXPECT_GT(b.optimizer_s[2], a.optimizer_s[2]) << "9 layers instead of 6";
  EXPECT_EQ(b.optimizer_s[0], a.optimizer_s[0]);
  EXPECT_EQ(b.optimizer_s[3], a.optimizer_s[3]);
  // Memory: the weights of each stage are its own layers' (plus the ends' embedding and output).
  const std::vector<StageMemory> ma = memory_per_stage(even), mb = memory_per_stage(uneven);
  EXPECT_GT(mb[2].weights_bytes, ma[2].weights_bytes);
  EXPECT_EQ(mb[2].weights_bytes - ma[2].weights_bytes, ma[1].weights_bytes - mb[1].weights_bytes)
      << "+3 layers on stage 2, −3 on stage 1";
  EXPECT_EQ(mb[2].weights_bytes - ma[2].weights_bytes, 3 * core::layer_parameters_per_device(even) * 2) << "bf16";
  EXPECT_GT(mb[2].activations_bytes, ma[2].activations_bytes);
  EXPECT_LT(mb[1].activations_bytes, ma[1].activations_bytes);
  // Buckets with overlap-grad-reduce: each stage's hold its own parameters.
  for (core::Plan* plan : {&even, &uneven}) {
    plan->parallel.data_parallel = 2;
    plan->cluster.nodes = 2;
    plan->parallel.distributed_optimizer = true;
    plan->parallel.overlap_grad_reduce = true;
    plan->validate();
  }
  const StepCosts bucketed = step_costs(uneven, CostModel(profile, uneven.training.dtype, 8));
  const auto parameters = [&](int64_t stage) {
    int64_t sum = 0;
    for (const GradientBucket& bucket : bucketed.buckets(stage)) sum += bucket.parameters;
    return sum;
  };
  const std::vector<int64_t> expected = core::parameters_per_device_by_stage(uneven);
  for (int64_t s = 0; s < 4; ++s) EXPECT_EQ(parameters(s), expected[size_t(s)]) << "stage " << s;
}

TEST(UnevenSplit, AnEvenSplitGivenExplicitlyPredictsExactlyAsNone) {
  const core::Profile profile = core::resolve_profile("a100-80gb-dgx");
  core::Plan plan;
  plan.model = core::find_model_preset("gpt2-124m").spec;
  plan.model.num_layers = 4;
  plan.training.global_batch_size = 16;
  plan.cluster = {1, 4, "a100-80gb-dgx", std::nullopt, {}};
  plan.parallel.pipeline_parallel = 2;
  plan.parallel.data_parallel = 2;
  plan.parallel.micro_batch_size = 2;
  for (bool overlap : {false, true}) {
    core::Plan none = plan;
    none.parallel.distributed_optimizer = overlap;
    none.parallel.overlap_grad_reduce = overlap;
    none.validate();
    core::Plan split = none;
    split.parallel.pipeline_layer_split = {2, 2};
    split.validate();
    EXPECT_EQ(to_json(simulate(none, profile)).dump(), to_json(simulate(split, profile)).dump()) << overlap;
    // Interleaved: one layer per virtual stage, said both ways.
    none.parallel.schedule = core::Schedule::interleaved;
    none.parallel.layers_per_virtual_stage = 1;
    none.validate();
    split = none;
    split.parallel.layers_per_virtual_stage.reset();
    split.parallel.pipeline_layer_split = {1, 1, 1, 1};
    split.validate();
    EXPECT_EQ(to_json(simulate(none, profile)).dump(), to_json(simulate(split, profile)).dump()) << overlap;
  }
}

// llama3-8b's 128K vocabulary makes the output layer and loss worth more than two layers: the last
// stage is the pipeline's bottleneck, and moving a layer from it to the first stage speeds the step.
TEST(UnevenSplit, MovingALayerOffTheHeavyLastStageLowersTheStepTime) {
  core::Plan even;
  even.model = core::find_model_preset("llama3-8b").spec;
  even.model.seq_length = 2048;
  even.training.global_batch_size = 64;
  even.cluster = {1, 8, "h100-80gb-dgx", std::nullopt, {}};
  even.parallel.tensor_parallel = 2;
  even.parallel.pipeline_parallel = 4;
  even.parallel.micro_batch_size = 1;
  even.parallel.sequence_parallel = true;
  core::derive_data_parallel(even);
  even.validate();
  core::Plan uneven = even;
  uneven.parallel.pipeline_layer_split = {9, 8, 8, 7};
  uneven.validate();
  const core::Profile profile = core::resolve_profile("h100-80gb-dgx");
  const Prediction a = simulate(even, profile), b = simulate(uneven, profile);
  EXPECT_EQ(a.bottleneck_pipeline_stage, 3) << "the output layer and loss";
  EXPECT_LT(b.step_time_s, a.step_time_s);
  EXPECT_EQ(b.stages[0].layers, 9);
  EXPECT_EQ(b.stages[3].layers, 7);
  EXPECT_LT(b.stages[3].busy_s, a.stages[3].busy_s);
  // Megatron's flags say the same split: the same prediction.
  core::Plan flags = even;
  flags.parallel.first_stage_layers = 9;
  flags.parallel.last_stage_layers = 7;
  flags.validate();
  EXPECT_EQ(to_json(simulate(flags, profile)).dump(), to_json(b).dump());
  // The JSON names each stage's layers, group and busy time, and the bottleneck.
  const core::Json json = to_json(b);
  EXPECT_EQ(json["memory"][0]["layers"], 9);
  EXPECT_EQ(json["memory"][3]["device_group"], 0);
  EXPECT_EQ(json["memory"][3]["profile"], "h100-80gb-dgx");
  EXPECT_TRUE(json["memory"][3].contains("busy_s"));
  EXPECT_TRUE(json["memory"][3].contains("device_memory_bytes"));
  EXPECT_EQ(json["bottleneck_pipeline_stage"], b.bottleneck_pipeline_stage);
}

// The activations in flight with chunks of different sizes, against a replay of the schedule's
// own action lists: each forward adds its chunk's layers, each backward frees them.
TEST(UnevenSplit, InterleavedActivationsInFlightMatchTheScheduleReplay) {
  core::Plan plan = gpt_plan();
  plan.parallel.schedule = core::Schedule::interleaved;
  for (const std::vector<int64_t>& split : {std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2},
                                            std::vector<int64_t>{3, 3, 3, 3, 3, 3, 3, 3},
                                            std::vector<int64_t>{0, 4, 4, 4, 4, 4, 3, 1},
                                            std::vector<int64_t>{5, 1, 1, 5, 1, 5, 5, 1}}) {
    plan.parallel.pipeline_layer_split = split;
    plan.validate();
    const int64_t p = plan.parallel.pipeline_parallel, v = plan.virtual_stages();
    const core::PipelineSchedule schedule =
        core::build_schedule(core::Schedule::interleaved, int32_t(p), int32_t(v), int32_t(plan.microbatches()));
    for (int64_t r = 0; r < p; ++r) {
      double alive = 0, peak = 0;
      for (const core::Action& a : schedule.ranks[size_t(r)]) {
        const double layers = double(split[size_t(a.chunk * p + r)]);
        if (a.kind == core::ActionKind::forward) peak = std::max(peak, alive += layers);
        if (a.kind == core::ActionKind::backward) alive -= layers;
      }
      EXPECT_EQ(layer_activations_in_flight(plan, r), peak) << "rank " << r << " of split " << split.size();
    }
  }
}

// With an uneven split the peak may sit on a middle stage: the search's peak is every stage's max.
TEST(UnevenSplit, PeakMemoryIsTheMostOfAnyStage) {
  core::Plan plan = gpt_plan();
  for (const std::vector<int64_t>& split :
       {std::vector<int64_t>{2, 12, 6, 4}, std::vector<int64_t>{1, 2, 20, 1}, std::vector<int64_t>{0, 8, 8, 8}}) {
    plan.parallel.pipeline_layer_split = split;
    plan.validate();
    int64_t most = 0;
    for (const StageMemory& stage : memory_per_stage(plan)) most = std::max(most, stage.total_bytes());
    EXPECT_EQ(countable_peak_memory_bytes(plan).value(), most);
    EXPECT_EQ(peak_memory_bytes(plan), most);
  }
}

// gpt3-13b on two nodes, one stage per node (tp 8, pp 2).
core::Plan mixed_plan(const std::string& first, const std::string& second, int64_t micro_batch = 1,
                      bool sequence_parallel = true) {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt3-13b").spec;
  plan.training.global_batch_size = 32;
  plan.cluster = mixed_cluster({{1, 8, first}, {1, 8, second}});
  plan.parallel.tensor_parallel = 8;
  plan.parallel.pipeline_parallel = 2;
  plan.parallel.micro_batch_size = micro_batch;
  plan.parallel.sequence_parallel = sequence_parallel;
  core::derive_data_parallel(plan);
  plan.validate();
  return plan;
}

// Micro-batches of 4 without sequence parallelism: the first stage needs between 40 and 80 GiB.
TEST(MixedCluster, MemoryIsCheckedAgainstEachGroupsDevices) {
  const core::Profile a100 = core::resolve_profile("a100-80gb-dgx");
  const core::Plan plan = mixed_plan("a100-40gb-test", "a100-80gb-dgx", 4, false);
  const Prediction p = simulate(plan, {a100_40gb(), a100});
  ASSERT_GT(p.memory[0].total_bytes(), 40 * kGiB) << "the test needs a stage between the two sizes";
  ASSERT_LT(p.memory[0].total_bytes(), a100.device.memory_bytes);
  EXPECT_FALSE(p.fits);
  EXPECT_FALSE(p.stages[0].fits);
  EXPECT_TRUE(p.stages[1].fits);
  EXPECT_EQ(p.stages[0].device_group, 0);
  EXPECT_EQ(p.stages[1].device_group, 1);
  EXPECT_EQ(p.stages[0].profile_name, "a100-40gb-test");
  EXPECT_EQ(p.stages[0].device_memory_bytes, 40 * kGiB);
  EXPECT_EQ(p.stages[1].device_memory_bytes, a100.device.memory_bytes);
  EXPECT_EQ(p.device_memory_bytes, 40 * kGiB) << "the smallest device's";
  EXPECT_EQ(p.profile_name, "a100-40gb-test + a100-80gb-dgx");
  const core::Json json = to_json(p);
  EXPECT_EQ(json["memory"][0]["profile"], "a100-40gb-test");
  EXPECT_EQ(json["memory"][0]["fits"], false);
  EXPECT_EQ(json["memory"][1]["fits"], true);
  // The same stages on 80 GiB devices fit.
  const core::Plan big = mixed_plan("a100-80gb-dgx", "a100-80gb-dgx", 4, false);
  EXPECT_TRUE(simulate(big, {a100, a100}).fits);
  // The search's per-group check agrees.
  const std::vector<GroupMemory> groups = {{memory_options(a100_40gb()), 40 * kGiB},
                                           {memory_options(a100), a100.device.memory_bytes}};
  const std::optional<MemoryFit> fit = countable_memory_fit(plan, groups);
  ASSERT_TRUE(fit.has_value());
  EXPECT_FALSE(fit->fits());
  EXPECT_EQ(fit->worst_stage, 0);
  EXPECT_EQ(fit->peak_bytes, p.peak_memory_bytes);
  EXPECT_EQ(fit->excess_bytes, p.memory[0].total_bytes() - 40 * kGiB);
  // Swapped, the big stage lands on the big devices: it fits.
  const core::Plan swapped = mixed_plan("a100-80gb-dgx", "a100-40gb-test", 4, false);
  const Prediction q = simulate(swapped, {a100, a100_40gb()});
  EXPECT_EQ(q.fits, q.memory[1].total_bytes() <= 40 * kGiB);
  EXPECT_TRUE(q.stages[0].fits);
}

TEST(MixedCluster, AStageOnASlowerProfileIsSlower) {
  const core::Profile a100 = core::resolve_profile("a100-80gb-dgx"), h100 = core::resolve_profile("h100-80gb-dgx");
  const core::Plan mixed = mixed_plan("a100-80gb-dgx", "h100-80gb-dgx");
  const core::Plan fast = mixed_plan("h100-80gb-dgx", "h100-80gb-dgx");
  const CostModel a100_costs(a100, mixed.training.dtype, 8), h100_costs(h100, mixed.training.dtype, 8);
  const LayerCosts a100_layers = layer_costs(mixed, a100_costs), h100_layers = layer_costs(mixed, h100_costs);
  const StepCosts m = step_costs(mixed, {{&a100_costs, &a100_layers}, {&h100_costs, &h100_layers}});
  const StepCosts f = step_costs(fast, {{&h100_costs, &h100_layers}, {&h100_costs, &h100_layers}});
  EXPECT_GT(m.forward[0].total_s(), f.forward[0].total_s());
  EXPECT_GT(m.backward[0].total_s(), f.backward[0].total_s());
  EXPECT_EQ(m.forward[1].total_s(), f.forward[1].total_s()) << "stage 1 is on H100 in both";
  EXPECT_GT(m.optimizer_s[0], f.optimizer_s[0]);
  EXPECT_EQ(m.optimizer_s[1], f.optimizer_s[1]);

  const Prediction slow = simulate(mixed, {a100, h100}), quick = simulate(fast, {h100, h100});
  EXPECT_GT(slow.step_time_s, quick.step_time_s);
  EXPECT_EQ(slow.bottleneck_pipeline_stage, 0) << "the A100 stage";
  EXPECT_GT(slow.stages[0].busy_s, slow.stages[1].busy_s);
  // MFU against both groups' peaks, weighted by their devices.
  const double peak = 8 * a100_costs.peak_flops_per_s() + 8 * h100_costs.peak_flops_per_s();
  EXPECT_DOUBLE_EQ(slow.mfu, slow.model_flops_per_step / (slow.step_time_s * peak));
}

TEST(MixedCluster, ATransferBetweenGroupsTakesTheSlowerLink) {
  const core::Profile a100 = core::resolve_profile("a100-80gb-dgx"), h100 = core::resolve_profile("h100-80gb-dgx");
  const core::Plan plan = mixed_plan("a100-80gb-dgx", "h100-80gb-dgx");
  const CostModel a100_costs(a100, plan.training.dtype, 8), h100_costs(h100, plan.training.dtype, 8);
  const LayerCosts a100_layers = layer_costs(plan, a100_costs), h100_layers = layer_costs(plan, h100_costs);
  const StepCosts step = step_costs(plan, {{&a100_costs, &a100_layers}, {&h100_costs, &h100_layers}});
  const double bytes = double(plan.parallel.micro_batch_size * plan.model.seq_length * plan.model.hidden_size) * 2.0 /
                       double(plan.parallel.tensor_parallel);
  const double a = a100_costs.point_to_point_s(bytes, true), h = h100_costs.point_to_point_s(bytes, true);
  ASSERT_NE(a, h) << "the test needs links of different speeds";
  EXPECT_EQ(step.send_s[0], std::max(a, h));
  // The same order of groups reversed gives the same link.
  const core::Plan reversed = mixed_plan("h100-80gb-dgx", "a100-80gb-dgx");
  const StepCosts back = step_costs(reversed, {{&h100_costs, &h100_layers}, {&a100_costs, &a100_layers}});
  EXPECT_EQ(back.send_s[0], std::max(a, h));
}

// The trace names each rank after its own layers and, on a mixed cluster, its group's profile.
std::string process_name(const core::Json& trace, int64_t rank) {
  for (const core::Json& event : trace.at("traceEvents"))
    if (event.at("ph") == "M" && event.at("name") == "process_name" && event.at("pid") == rank)
      return event.at("args").at("name").get<std::string>();
  return "(none)";
}

TEST(MixedCluster, TheTraceNamesEachRanksLayersAndDevices) {
  core::Plan plan = mixed_plan("a100-80gb-dgx", "h100-80gb-dgx");
  plan.parallel.pipeline_layer_split = {16, 24};
  plan.validate();
  const core::Profile a100 = core::resolve_profile("a100-80gb-dgx"), h100 = core::resolve_profile("h100-80gb-dgx");
  const core::Json trace = chrome_trace(plan, simulate(plan, {a100, h100}));
  EXPECT_EQ(process_name(trace, 0), "pipeline rank 0 (layers 0–15) on a100-80gb-dgx");
  EXPECT_EQ(process_name(trace, 1), "pipeline rank 1 (layers 16–39) on h100-80gb-dgx");
  core::Plan interleaved = gpt_plan();
  interleaved.parallel.schedule = core::Schedule::interleaved;
  interleaved.parallel.pipeline_layer_split = {0, 4, 4, 4, 4, 4, 3, 1};
  interleaved.validate();
  const core::Json t = chrome_trace(interleaved, simulate(interleaved, a100));
  EXPECT_EQ(process_name(t, 0), "pipeline rank 0 (2 chunks: no layers, 12–15)");
  EXPECT_EQ(process_name(t, 3), "pipeline rank 3 (2 chunks: layers 8–11, 23)");
}

TEST(MixedCluster, OneProfileCannotSimulateAMixedPlan) {
  const core::Plan plan = mixed_plan("a100-80gb-dgx", "h100-80gb-dgx");
  try {
    simulate(plan, core::resolve_profile("a100-80gb-dgx"));
    FAIL() << "simulated a mixed plan on one profile";
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("a100-80gb-dgx"));
    EXPECT_THAT(e.what(), HasSubstr("h100-80gb-dgx"));
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
  }
  EXPECT_THROW(simulate(plan, std::vector<core::Profile>{core::resolve_profile("a100-80gb-dgx")}), InvalidInput)
      << "one profile for two groups";
}

}  // namespace
}  // namespace loom::sim
