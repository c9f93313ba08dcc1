// What the simulator makes of plans at the documented maxima (core/limits.hpp): every byte,
// FLOP and time is a positive, finite, representable number, or the plan is refused with
// InvalidInput naming what cannot be counted; and the event simulation and its timeline stay
// within their documented sizes, refusing larger plans with the limit in the message.

#include "../core/plan_maxima.hpp"
#include "../fixture_cases.hpp"

#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/limits.hpp"
#include "core/profile.hpp"
#include "simulator/event_simulation.hpp"
#include "simulator/memory_model.hpp"
#include "simulator/ops.hpp"
#include "simulator/prediction.hpp"
#include "simulator/step_bound.hpp"
#include "simulator/trace.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <string>

namespace loom::sim {
namespace {

using ::testing::HasSubstr;
using loom::testing::MaximaCase;

bool finite_non_negative(double x) { return std::isfinite(x) && x >= 0; }

void expect_countable(const StageMemory& m, int64_t stage) {
  for (const int64_t part : {m.weights_bytes, m.gradients_bytes, m.optimizer_bytes, m.activations_bytes, m.other_bytes}) {
    EXPECT_GE(part, 0) << "stage " << stage;
    EXPECT_LE(part, core::limits::kMaxCountedBytes) << "stage " << stage;
  }
  EXPECT_GT(m.total_bytes(), 0) << "stage " << stage;
  EXPECT_GE(m.total_bytes(), m.activations_bytes) << "stage " << stage;
}

class SimulatedAtTheMaxima : public ::testing::TestWithParam<MaximaCase> {};

TEST_P(SimulatedAtTheMaxima, CountsAreRepresentableOrRefused) {
  const core::Plan& plan = GetParam().plan;
  ASSERT_NO_THROW(plan.validate());
  const core::Profile profile = core::resolve_profile(plan.cluster.profile);

  // Memory: each end stage either counts or is refused naming the limit; the search's
  // non-throwing variant agrees.
  bool countable = true;
  for (const int64_t stage : {int64_t(0), plan.parallel.pipeline_parallel - 1}) {
    try {
      expect_countable(stage_memory(plan, stage), stage);
    } catch (const InvalidInput& e) {
      countable = false;
      EXPECT_THAT(e.what(), HasSubstr("more than the 2^60 bytes (1 EiB) Loom counts"));
    }
  }
  EXPECT_EQ(countable_peak_memory_bytes(plan).has_value(), countable);

  // Ops of one layer, the embedding and the output layer: finite FLOPs and bytes.
  for (const LayerOps& ops : {transformer_layer_ops(plan), embedding_ops(plan), output_layer_ops(plan)})
    for (const std::vector<Op>* list : {&ops.forward, &ops.backward, &ops.recompute})
      for (const Op& op : *list) {
        EXPECT_TRUE(finite_non_negative(op.flops)) << op.name;
        EXPECT_TRUE(finite_non_negative(op.bytes)) << op.name;
        EXPECT_GE(op.m, 0) << op.name;
        EXPECT_GE(op.n, 0) << op.name;
        EXPECT_GE(op.k, 0) << op.name;
        EXPECT_GE(op.batch, 1) << op.name;
      }

  // Step costs and the search's bound: finite times.
  const CostModel costs(profile, plan.training.dtype, plan.cluster.devices_per_node);
  const StepCosts step = step_costs(plan, costs, layer_costs(plan, costs), false);
  for (const ActionCost& a : step.forward) EXPECT_TRUE(finite_non_negative(a.total_s()));
  for (const ActionCost& a : step.backward) EXPECT_TRUE(finite_non_negative(a.total_s()));
  for (const std::vector<double>* times : {&step.send_s, &step.grad_sync_s, &step.optimizer_s})
    for (const double t : *times) EXPECT_TRUE(finite_non_negative(t));
  const double bound = step_time_lower_bound(step, int32_t(plan.parallel.pipeline_parallel),
                                             int32_t(plan.virtual_stages()), int32_t(plan.microbatches()));
  EXPECT_TRUE(std::isfinite(bound));
  EXPECT_GT(bound, 0);

  // The whole prediction: finite and positive, or refused for a reason it names.
  SimulationOptions options;
  options.record_timeline = false;
  try {
    const Prediction p = simulate(plan, profile, options);
    EXPECT_TRUE(countable);
    EXPECT_LE(stage_microbatches(plan), core::limits::kMaxSimulatedStageMicrobatches);
    for (const double x : {p.step_time_s, p.tokens_per_s, p.model_flops_per_step, p.mfu})
      EXPECT_TRUE(std::isfinite(x) && x > 0) << x;
    EXPECT_GT(p.peak_memory_bytes, 0);
  } catch (const InvalidInput& e) {
    const std::string message = e.what();
    if (countable) EXPECT_THAT(message, HasSubstr("more than the 1048576 Loom simulates"));
    else EXPECT_THAT(message, HasSubstr("Loom counts (int64 bytes)"));
  }
}

INSTANTIATE_TEST_SUITE_P(Fields, SimulatedAtTheMaxima, ::testing::ValuesIn(loom::testing::maxima_cases()),
                         [](const auto& info) { return info.param.label; });

// The case: Llama 3 405B with a 2^24-token sequence once ranked as fitting in "0.0 GiB"
// and printed activations of −8589934592 GiB.
TEST(UncountableMemory, SixteenMillionTokenSequenceIsRefusedNamingTheSequence) {
  core::Plan plan = loom::testing::maxima_base_plan();
  plan.model.seq_length = int64_t(1) << 24;
  plan.parallel.tensor_parallel = 1;
  core::derive_data_parallel(plan);
  ASSERT_NO_THROW(plan.validate());
  EXPECT_FALSE(countable_peak_memory_bytes(plan).has_value());
  const std::string message =
      loom::testing::refusal([&] { simulate(plan, core::resolve_profile(plan.cluster.profile)); });
  EXPECT_THAT(message, HasSubstr("seq-length=16777216 with micro-batch-size=1"));
  EXPECT_THAT(message, HasSubstr("activations on pipeline stage 0"));
}

// GPT-3 175B, 32 nodes, pp 32, a global batch of 2^24 sequences in microbatches of one: 2^21
// microbatches on 32 stages. It once allocated gigabytes for four minutes; now it is refused up
// front, naming the split and the limit.
core::Plan absurd_batch_plan(int64_t global_batch) {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt3-175b").spec;
  plan.training.global_batch_size = global_batch;
  plan.cluster = {32, 8, "a100-80gb-dgx", std::nullopt, {}};
  plan.parallel.pipeline_parallel = 32;
  plan.parallel.micro_batch_size = 1;
  core::derive_data_parallel(plan);
  return plan;
}

TEST(BoundedSimulation, AbsurdBatchIsRefusedWithTheLimit) {
  const core::Plan plan = absurd_batch_plan(int64_t(1) << 24);
  ASSERT_NO_THROW(plan.validate());
  EXPECT_EQ(stage_microbatches(plan), int64_t(32) * (int64_t(1) << 21));
  for (const std::string& message :
       {loom::testing::refusal([&] { check_simulation_size(plan); }),
        loom::testing::refusal([&] { simulate(plan, core::resolve_profile(plan.cluster.profile)); })}) {
    EXPECT_THAT(message, HasSubstr("2097152 microbatches on pipeline-model-parallel-size=32"));
    EXPECT_THAT(message, HasSubstr("more than the 1048576 Loom simulates"));
  }
}

TEST(BoundedSimulation, TheLimitItselfIsAccepted) {
  // 32 stages × 32768 microbatches (dp 8) = 2^20 exactly; one more round of microbatches passes it.
  const core::Plan at = absurd_batch_plan(int64_t(8) << 15);
  EXPECT_EQ(stage_microbatches(at), core::limits::kMaxSimulatedStageMicrobatches);
  EXPECT_NO_THROW(check_simulation_size(at));
  const core::Plan past = absurd_batch_plan((int64_t(8) << 15) + 8);
  EXPECT_GT(stage_microbatches(past), core::limits::kMaxSimulatedStageMicrobatches);
  EXPECT_THROW(check_simulation_size(past), InvalidInput);
}

TEST(BoundedTimeline, ATimelinePastItsLimitIsRefusedWithTheLimit) {
  const core::Plan plan = core::default_plan();
  const core::Profile profile = core::resolve_profile(plan.cluster.profile);
  SimulationOptions options;
  const Prediction whole = simulate(plan, profile, options);
  const int64_t recorded = int64_t(whole.timeline.events.size() + whole.timeline.transfers.size());
  ASSERT_GT(recorded, 10);
  EXPECT_LE(recorded, options.max_timeline_events);

  options.max_timeline_events = recorded;  // exactly enough
  EXPECT_NO_THROW(simulate(plan, profile, options));
  options.max_timeline_events = recorded - 1;
  const std::string message = loom::testing::refusal([&] { simulate(plan, profile, options); });
  EXPECT_THAT(message, HasSubstr(fmt::format("more than the {} events Loom records", recorded - 1)));
  // Without a timeline the limit does not apply.
  options.record_timeline = false;
  EXPECT_NO_THROW(simulate(plan, profile, options));
}

TEST(BoundedTimeline, TraceTextIsTheTraceDocumentWrittenOut) {
  const core::Plan plan = core::default_plan();
  const Prediction prediction = simulate(plan, core::resolve_profile(plan.cluster.profile));
  EXPECT_EQ(chrome_trace_text(plan, prediction), chrome_trace(plan, prediction).dump() + "\n");
}

}  // namespace
}  // namespace loom::sim
