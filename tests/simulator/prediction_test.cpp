// Whole predictions: their invariants on the default plan and GPT-3 175B, properties any sound
// simulator has (faster links never slow a step, more data parallelism never adds model state
// per device, a plan survives its JSON round trip), and the fidelity gate against the PTD-P
// paper's Table 1.

#include "simulator/prediction.hpp"

#include "core/default_plan.hpp"
#include "core/model_arithmetic.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "simulator/megatron_validation.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace loom::sim {
namespace {

using core::DType;
using core::Recompute;
using core::Schedule;

const core::Profile& a100() {
  static const core::Profile profile = core::resolve_profile("a100-80gb-dgx");
  return profile;
}

// GPT-3 175B as the PTD-P paper trains it: tp 8, pp 8, dp 24 on 192 DGX A100 nodes.
core::Plan gpt3_175b_plan() {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt3-175b").spec;
  plan.model.padded_vocab_size = 51200;
  plan.training.global_batch_size = 1536;
  plan.training.dtype = DType::bf16;
  plan.cluster.nodes = 192;
  plan.cluster.devices_per_node = 8;
  plan.cluster.profile = "a100-80gb-dgx";
  plan.parallel.tensor_parallel = 8;
  plan.parallel.pipeline_parallel = 8;
  plan.parallel.data_parallel = 24;
  plan.parallel.micro_batch_size = 1;
  plan.parallel.schedule = Schedule::one_f_one_b;
  plan.parallel.recompute = Recompute::full;
  plan.validate();
  return plan;
}

// A mid-sized plan on two nodes with the given split; devices = tp·pp·dp.
core::Plan gpt2_350m_plan(int64_t tp, int64_t pp, int64_t dp, bool sp, Schedule schedule = Schedule::one_f_one_b,
                          Recompute recompute = Recompute::selective) {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt2-350m").spec;
  plan.model.padded_vocab_size = 50304;
  plan.training.global_batch_size = 64;
  plan.training.dtype = DType::bf16;
  const int64_t devices = tp * pp * dp;
  plan.cluster.devices_per_node = std::min<int64_t>(devices, 8);
  plan.cluster.nodes = devices / plan.cluster.devices_per_node;
  plan.cluster.profile = "a100-80gb-dgx";
  plan.parallel.tensor_parallel = tp;
  plan.parallel.pipeline_parallel = pp;
  plan.parallel.data_parallel = dp;
  plan.parallel.micro_batch_size = 2;
  plan.parallel.schedule = schedule;
  if (schedule == Schedule::interleaved) plan.parallel.layers_per_virtual_stage = 2;
  plan.parallel.recompute = recompute;
  plan.parallel.sequence_parallel = sp;
  plan.parallel.distributed_optimizer = dp > 1;
  plan.validate();
  return plan;
}

std::vector<core::Plan> varied_plans() {
  return {core::default_plan(),
          gpt2_350m_plan(1, 1, 8, false),
          gpt2_350m_plan(8, 1, 2, true),
          gpt2_350m_plan(4, 2, 2, false),
          gpt2_350m_plan(2, 4, 2, true, Schedule::interleaved),
          gpt2_350m_plan(2, 4, 2, true, Schedule::gpipe, Recompute::full),
          gpt2_350m_plan(4, 4, 1, false),
          gpt3_175b_plan()};
}

std::string describe(const core::Plan& plan) {
  return plan.model.name + " tp" + std::to_string(plan.parallel.tensor_parallel) + " pp" +
         std::to_string(plan.parallel.pipeline_parallel) + " dp" + std::to_string(plan.parallel.data_parallel) + " " +
         std::string(core::to_string(plan.parallel.schedule));
}

SimulationOptions quick() {
  SimulationOptions options;
  options.record_timeline = false;
  return options;
}

void expect_sound(const core::Plan& plan, const Prediction& p) {
  EXPECT_GT(p.step_time_s, 0);
  EXPECT_TRUE(std::isfinite(p.step_time_s));
  EXPECT_LE(std::abs(p.breakdown.total_s() - p.step_time_s), 1e-9 * p.step_time_s)
      << p.breakdown.total_s() << " vs " << p.step_time_s;
  EXPECT_GT(p.mfu, 0);
  EXPECT_LT(p.mfu, 1);
  EXPECT_GE(p.hardware_flops_per_step, p.model_flops_per_step);
  EXPECT_GE(p.hardware_tflops_per_device, p.model_tflops_per_device);
  EXPECT_EQ(p.memory.size(), size_t(plan.parallel.pipeline_parallel));
  int64_t peak = 0;
  for (const StageMemory& stage : p.memory) peak = std::max(peak, stage.total_bytes());
  EXPECT_EQ(p.peak_memory_bytes, peak);
  EXPECT_EQ(p.device_memory_bytes, a100().device.memory_bytes);
  EXPECT_EQ(p.fits, p.peak_memory_bytes <= p.device_memory_bytes);
  EXPECT_DOUBLE_EQ(p.tokens_per_s,
                   double(plan.training.global_batch_size * plan.model.seq_length) / p.step_time_s);
  EXPECT_GE(p.critical_pipeline_rank, 0);
  EXPECT_LT(p.critical_pipeline_rank, plan.parallel.pipeline_parallel);
  for (double part : {p.breakdown.forward_s, p.breakdown.backward_s, p.breakdown.recompute_s,
                      p.breakdown.tp_comm_exposed_s, p.breakdown.pp_comm_exposed_s, p.breakdown.pp_bubble_s,
                      p.breakdown.dp_comm_exposed_s, p.breakdown.optimizer_s})
    EXPECT_GE(part, 0);
}

TEST(Prediction, DefaultPlanIsSound) {
  const core::Plan plan = core::default_plan();
  plan.validate();
  const Prediction p = simulate(plan, a100());
  expect_sound(plan, p);
  EXPECT_TRUE(p.fits);
  EXPECT_EQ(p.profile_name, "a100-80gb-dgx");
  EXPECT_GT(p.breakdown.tp_comm_exposed_s, 0);  // tp 2
  EXPECT_GT(p.breakdown.pp_bubble_s, 0);        // pp 2
  EXPECT_GT(p.breakdown.recompute_s, 0);        // selective
  EXPECT_FALSE(p.timeline.events.empty());
}

TEST(Prediction, Gpt3_175bIsSound) {
  const core::Plan plan = gpt3_175b_plan();
  const Prediction p = simulate(plan, a100(), quick());
  expect_sound(plan, p);
  EXPECT_TRUE(p.fits);
  EXPECT_GT(p.breakdown.recompute_s, 0);  // full recompute
  // The full-recompute hardware FLOPs are the PTD-P paper's 96·B·s·L·h²·(…) form.
  EXPECT_NEAR(p.hardware_flops_per_step / core::megatron_full_recompute_flops_per_step(plan.model, 1536), 1.0, 1e-9);
}

TEST(Prediction, VariedPlansAreSound) {
  for (const core::Plan& plan : varied_plans()) {
    SCOPED_TRACE(describe(plan));
    expect_sound(plan, simulate(plan, a100(), quick()));
  }
}

TEST(Prediction, ModelFlopsAreMegatrons) {
  for (const core::Plan& plan : varied_plans()) {
    SCOPED_TRACE(describe(plan));
    const Prediction p = simulate(plan, a100(), quick());
    EXPECT_EQ(p.model_flops_per_step, core::model_flops_per_step(plan.model, plan.training.global_batch_size));
    EXPECT_EQ(p.hardware_flops_per_step,
              core::hardware_flops_per_step(plan.model, plan.training.global_batch_size, plan.parallel.recompute));
    const double devices = double(plan.cluster.world_size());
    EXPECT_NEAR(p.mfu, p.model_flops_per_step / (p.step_time_s * devices * 312e12), 1e-12);
  }
}

TEST(Prediction, FasterLinksNeverSlowAStep) {
  core::Profile fast = a100();
  for (core::LinkSpec& link : fast.links) link.bandwidth_bytes_per_s *= 2;
  for (const core::Plan& plan : varied_plans()) {
    SCOPED_TRACE(describe(plan));
    for (bool overlap : {false, true}) {
      const SimulationOptions options = quick();
      core::Plan variant = plan;
      variant.parallel.overlap_grad_reduce = overlap;
      const Prediction base = simulate(variant, a100(), options);
      const Prediction faster = simulate(variant, fast, options);
      EXPECT_LE(faster.step_time_s, base.step_time_s * (1 + 1e-12)) << "overlap " << overlap;
      EXPECT_LE(faster.on_link.tp_comm_s, base.on_link.tp_comm_s * (1 + 1e-12));
      EXPECT_LE(faster.on_link.dp_comm_s, base.on_link.dp_comm_s * (1 + 1e-12));
    }
  }
  // And the plans with communication on the critical path do get faster.
  EXPECT_LT(simulate(gpt2_350m_plan(8, 1, 2, true), fast, quick()).step_time_s,
            simulate(gpt2_350m_plan(8, 1, 2, true), a100(), quick()).step_time_s);
}

// Megatron-Core's overlaps, each switched on where the plan allows it, in buckets of 1 M
// parameters (several per stage). Without contention (compute_slowdown 1) overlapping never
// lengthens a step, except by the latency of the extra collectives the buckets cost; with the
// datasheet profiles' contention, compute beside a transfer runs slower — on a rank off the
// critical path that can delay the critical one — by at most (slowdown − 1) × the communication
// on the links. The hidden communication is reported beside, not inside, the step.
TEST(Prediction, OverlappingCommunicationNeverSlowsAStep) {
  for (const core::Profile& datasheet : {a100(), core::resolve_profile("h100-80gb-dgx")}) {
    core::Profile no_contention = datasheet;
    no_contention.overlap.compute_slowdown = 1.0;
    for (const core::Profile& profile : {no_contention, datasheet}) {
      for (const core::Plan& plan : varied_plans()) {
        SCOPED_TRACE(describe(plan) + " on " + profile.name + fmt::format(" (slowdown {})", profile.overlap.compute_slowdown));
        core::Plan overlapped = plan;
        overlapped.parallel.overlap_grad_reduce = true;
        overlapped.parallel.overlap_param_gather = plan.parallel.distributed_optimizer;
        overlapped.parallel.tp_comm_overlap = plan.parallel.sequence_parallel;
        overlapped.parallel.ddp_bucket_size = 1'000'000;
        const Prediction with = simulate(overlapped, profile, quick());
        const Prediction without = simulate(plan, profile, quick());
        // Each bucket beyond one per stage adds a collective's latency: 2(dp − 1) steps of at most 5 µs.
        const double buckets = double(core::parameters_per_device_on_stage(plan, 0)) / 1e6 + 2.0;
        const double latency = buckets * 2.0 * double(plan.parallel.data_parallel) * 5e-6 *
                               double(plan.parallel.pipeline_parallel * plan.virtual_stages());
        const double contention = (profile.overlap.compute_slowdown - 1.0) * (with.on_link.dp_comm_s + with.on_link.tp_comm_s);
        EXPECT_LE(with.step_time_s, without.step_time_s * (1 + 1e-12) + latency + contention);
        EXPECT_NEAR(with.breakdown.total_s(), with.step_time_s, 1e-9 * with.step_time_s);
        EXPECT_LE(with.breakdown.dp_comm_exposed_s, with.on_link.dp_comm_s * (1 + 1e-12));
        EXPECT_LE(with.breakdown.tp_comm_exposed_s + with.breakdown.tp_comm_hidden_s,
                  with.on_link.tp_comm_s * (1 + 1e-12));
        EXPECT_EQ(without.breakdown.dp_comm_hidden_s, 0.0);
        EXPECT_EQ(without.breakdown.tp_comm_hidden_s, 0.0);
        if (plan.parallel.data_parallel > 1) {
          EXPECT_GT(with.breakdown.dp_comm_hidden_s, 0.0);
        }
        if (plan.parallel.sequence_parallel) {
          EXPECT_GT(with.breakdown.tp_comm_hidden_s, 0.0);
        }
      }
    }
  }
}

TEST(Prediction, MoreDataParallelismNeverAddsModelStatePerDevice) {
  // tp 2, pp 2 fixed, global batch fixed, distributed optimizer on: dp 1 → 2 → 4 → 8.
  std::vector<std::vector<StageMemory>> by_dp;
  for (int64_t dp : {1, 2, 4, 8}) {
    core::Plan plan = gpt2_350m_plan(2, 2, dp, true);
    plan.cluster.devices_per_node = 4;
    plan.cluster.nodes = dp;
    plan.parallel.distributed_optimizer = true;
    plan.validate();
    const Prediction p = simulate(plan, a100(), quick());
    ASSERT_EQ(p.memory.size(), 2u);
    by_dp.push_back(p.memory);
  }
  for (size_t i = 1; i < by_dp.size(); ++i)
    for (size_t stage = 0; stage < 2; ++stage) {
      const StageMemory& fewer = by_dp[i - 1][stage];
      const StageMemory& more = by_dp[i][stage];
      const int64_t state_fewer = fewer.weights_bytes + fewer.gradients_bytes + fewer.optimizer_bytes;
      const int64_t state_more = more.weights_bytes + more.gradients_bytes + more.optimizer_bytes;
      EXPECT_LE(state_more, state_fewer) << "stage " << stage << ", step " << i;
      EXPECT_LT(more.optimizer_bytes, fewer.optimizer_bytes) << "ZeRO-1 shards the optimizer state";
    }
}

TEST(Prediction, PlanSurvivesItsJsonRoundTrip) {
  for (const core::Plan& plan : varied_plans()) {
    SCOPED_TRACE(describe(plan));
    const core::Plan reread = core::plan_from_json(core::to_json(plan));
    EXPECT_EQ(reread, plan);
    const Prediction before = simulate(plan, a100(), quick());
    const Prediction after = simulate(reread, a100(), quick());
    EXPECT_EQ(after.step_time_s, before.step_time_s);
    EXPECT_EQ(after.peak_memory_bytes, before.peak_memory_bytes);
  }
}

TEST(Prediction, TimelineRecordingDoesNotChangeThePrediction) {
  for (const core::Plan& plan : varied_plans()) {
    SCOPED_TRACE(describe(plan));
    EXPECT_EQ(simulate(plan, a100()).step_time_s, simulate(plan, a100(), quick()).step_time_s);
  }
}

TEST(Prediction, JsonDocumentCarriesTheNumbers) {
  const Prediction p = simulate(core::default_plan(), a100(), quick());
  const core::Json json = to_json(p);
  EXPECT_EQ(json.at("format"), "loom-prediction");
  EXPECT_EQ(json.at("step_time_s").get<double>(), p.step_time_s);
  EXPECT_EQ(json.at("peak_memory_bytes").get<int64_t>(), p.peak_memory_bytes);
  EXPECT_EQ(json.at("memory").size(), p.memory.size());
  double parts = 0;
  for (const auto& [key, value] : json.at("breakdown").items()) parts += value.get<double>();
  EXPECT_NEAR(parts, p.step_time_s, 1e-9 * p.step_time_s);
}

// The simulator's fidelity gate: the ten GPT rows of Narayanan et al. (SC21) Table 1 within 5 %
// mean absolute percentage error on the datasheet A100 profile.
TEST(MegatronValidation, Table1WithinFivePercent) {
  const ValidationReport report = validate_megatron_ptdp(a100());
  ASSERT_EQ(report.rows.size(), 10u);
  EXPECT_LE(report.mean_absolute_percentage_error, 5.0);
  EXPECT_GT(report.mean_absolute_percentage_error, 0.0);
  double total = 0;
  for (const ValidationRow& row : report.rows) {
    SCOPED_TRACE(row.published.model);
    EXPECT_NO_THROW(row.plan.validate());
    EXPECT_TRUE(row.prediction.fits);
    EXPECT_GT(row.candidates, 0);
    EXPECT_EQ(row.plan.parallel.tensor_parallel, row.published.tensor_parallel);
    EXPECT_EQ(row.plan.parallel.pipeline_parallel, row.published.pipeline_parallel);
    EXPECT_EQ(row.plan.cluster.world_size(), row.published.devices);
    EXPECT_EQ(row.plan.training.global_batch_size, row.published.global_batch_size);
    EXPECT_EQ(row.plan.parallel.recompute, Recompute::full);
    EXPECT_NEAR(row.error_fraction, row.prediction.hardware_tflops_per_device / row.published.tflops_per_device - 1.0,
                1e-12);
    total += std::abs(row.error_fraction);
  }
  EXPECT_NEAR(report.mean_absolute_percentage_error, 100.0 * total / 10.0, 1e-9);
}

TEST(MegatronValidation, PublishedTableIsTheTenRowsOfTheSC21Paper) {
  const auto& rows = megatron_ptdp_table1();
  ASSERT_EQ(rows.size(), 10u);
  EXPECT_EQ(rows.front().model, "megatron-1.7b");
  EXPECT_EQ(rows.back().model, "megatron-1t");
  for (const PublishedRun& run : rows) {
    SCOPED_TRACE(run.model);
    EXPECT_EQ(run.devices % (run.tensor_parallel * run.pipeline_parallel), 0);
    EXPECT_NO_THROW(core::find_model_preset(run.model));
  }
}

}  // namespace
}  // namespace loom::sim
