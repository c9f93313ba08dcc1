// The event simulation of the schedule against the published pipeline arithmetic (Narayanan et
// al. SC21): with forward 1 and backward 2 time units per stage and free communication, 1F1B and
// GPipe take (m + p − 1)·3 and interleaving divides the bubble by v.

#include "simulator/event_simulation.hpp"

#include "core/model_presets.hpp"
#include "core/rank_layout.hpp"
#include "core/schedule.hpp"
#include "simulator/cost_model.hpp"
#include "simulator/step_costs.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace loom::sim {
namespace {

using core::Schedule;

ActionCost compute_cost(double seconds) {
  ActionCost cost;
  cost.compute_s = seconds;
  cost.segments.push_back({Stream::compute, "layers", seconds});
  return cost;
}

// Every virtual stage: forward 1/v, backward 2/v (a pipeline rank's layers take 1 and 2 in all).
StepCosts synthetic_costs(int32_t p, int32_t v, double send_s = 0, double grad_sync_s = 0, double optimizer_s = 0,
                          bool rendezvous = false) {
  StepCosts costs;
  const size_t stages = size_t(p) * size_t(v);
  costs.forward.assign(stages, compute_cost(1.0 / v));
  costs.backward.assign(stages, compute_cost(2.0 / v));
  costs.send_s.assign(stages, send_s);
  costs.send_rendezvous.assign(stages, rendezvous);
  costs.grad_sync_s.assign(size_t(p), grad_sync_s);
  costs.optimizer_s.assign(size_t(p), optimizer_s);
  costs.optimizer_comm_s.assign(size_t(p), 0.0);
  costs.grad_norm_s.assign(size_t(p), 0.0);
  return costs;
}

Timeline run(Schedule kind, int32_t p, int32_t v, int32_t m, const StepCosts& costs, bool record = true) {
  SimulationOptions options;
  options.record_timeline = record;
  return simulate_schedule(core::build_schedule(kind, p, v, m), costs, options);
}

void expect_near_relative(double actual, double expected, double tolerance = 1e-9) {
  EXPECT_LE(std::abs(actual - expected), tolerance * std::max(1.0, std::abs(expected)))
      << actual << " vs " << expected;
}

double rank_sum(const RankTotals& r) {
  return r.forward_s + r.backward_s + r.recompute_s + r.tp_comm_s + r.pp_comm_s + r.dp_comm_exposed_s +
         r.optimizer_s + r.idle_s;
}

void expect_breakdown_sums_to_step(const Timeline& timeline) {
  for (size_t r = 0; r < timeline.ranks.size(); ++r) {
    SCOPED_TRACE("pipeline rank " + std::to_string(r));
    expect_near_relative(rank_sum(timeline.ranks[r]), timeline.step_time_s);
    EXPECT_GE(timeline.ranks[r].idle_s, 0.0);
    EXPECT_LE(timeline.ranks[r].end_s, timeline.step_time_s * (1 + 1e-12));
  }
}

struct Shape {
  int32_t p, m;
};

std::vector<Shape> shapes() {
  std::vector<Shape> out;
  for (int32_t p : {2, 4, 8})
    for (int32_t m : {p, 2 * p, 4 * p, 16}) out.push_back({p, m});
  return out;
}

std::string describe(const Shape& s, int32_t v = 1) {
  return "p=" + std::to_string(s.p) + " m=" + std::to_string(s.m) + " v=" + std::to_string(v);
}

TEST(EventSimulation, RendezvousSendsNeverFinishSoonerThanEagerOnes) {
  for (const Shape& s : shapes())
    for (Schedule kind : {Schedule::gpipe, Schedule::one_f_one_b, Schedule::interleaved})
      for (int32_t v : {1, 2}) {
        if ((kind == Schedule::interleaved) != (v > 1) || s.m % s.p != 0) continue;
        for (double send : {0.0, 0.3}) {
          SCOPED_TRACE(describe(s, v));
          const Timeline eager = run(kind, s.p, v, s.m, synthetic_costs(s.p, v, send));
          const Timeline rendezvous = run(kind, s.p, v, s.m, synthetic_costs(s.p, v, send, 0, 0, true));
          EXPECT_GE(rendezvous.step_time_s, eager.step_time_s * (1 - 1e-12));
          expect_breakdown_sums_to_step(rendezvous);
          for (const RankTotals& r : rendezvous.ranks) {
            expect_near_relative(r.forward_s, s.m * 1.0);
            expect_near_relative(r.backward_s, s.m * 2.0);
          }
        }
      }
}

TEST(EventSimulation, RendezvousSenderWaitsForItsReceiver) {
  // GPipe, 2 ranks, 2 microbatches, transfers of 0.5: under rendezvous a transfer occupies
  // both of its ends, and the step is never shorter than with eager sends.
  const Timeline eager = run(Schedule::gpipe, 2, 1, 2, synthetic_costs(2, 1, 0.5));
  const Timeline rendezvous = run(Schedule::gpipe, 2, 1, 2, synthetic_costs(2, 1, 0.5, 0, 0, true));
  EXPECT_GE(rendezvous.step_time_s, eager.step_time_s);
  // The transfers occupy both ends under rendezvous: each rank's pipeline communication is at
  // least its sends' full durations (2 sends of 0.5 per rank).
  for (const RankTotals& r : rendezvous.ranks) EXPECT_GE(r.pp_comm_s, 1.0 - 1e-12);
}

TEST(EventSimulation, OneFOneBTakesMPlusPMinusOneSlots) {
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(describe(s));
    const Timeline t = run(Schedule::one_f_one_b, s.p, 1, s.m, synthetic_costs(s.p, 1));
    expect_near_relative(t.step_time_s, (s.m + s.p - 1) * 3.0);
    ASSERT_EQ(t.ranks.size(), size_t(s.p));
    // Every rank idles for the bubble: (p − 1)/(m + p − 1) of the step.
    for (const RankTotals& r : t.ranks) {
      expect_near_relative(r.idle_s / t.step_time_s, double(s.p - 1) / double(s.m + s.p - 1));
      expect_near_relative(r.forward_s, s.m * 1.0);
      expect_near_relative(r.backward_s, s.m * 2.0);
    }
    expect_breakdown_sums_to_step(t);
  }
}

TEST(EventSimulation, GPipeTakesMPlusPMinusOneSlots) {
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(describe(s));
    const Timeline t = run(Schedule::gpipe, s.p, 1, s.m, synthetic_costs(s.p, 1));
    expect_near_relative(t.step_time_s, (s.m + s.p - 1) * 3.0);
    expect_breakdown_sums_to_step(t);
  }
}

TEST(EventSimulation, InterleavingDividesTheBubbleByV) {
  for (const Shape& s : shapes()) {
    for (int32_t v : {2, 4}) {
      SCOPED_TRACE(describe(s, v));
      ASSERT_EQ(s.m % s.p, 0);
      const Timeline t = run(Schedule::interleaved, s.p, v, s.m, synthetic_costs(s.p, v));
      expect_near_relative(t.step_time_s, 3.0 * s.m + 3.0 * (s.p - 1) / v);
      for (const RankTotals& r : t.ranks) expect_near_relative(r.idle_s, 3.0 * (s.p - 1) / v);
      expect_breakdown_sums_to_step(t);
    }
  }
}

TEST(EventSimulation, SinglePipelineRankHasNoBubble) {
  for (int32_t m : {1, 4, 16}) {
    const Timeline t = run(Schedule::one_f_one_b, 1, 1, m, synthetic_costs(1, 1));
    expect_near_relative(t.step_time_s, 3.0 * m);
    EXPECT_NEAR(t.ranks[0].idle_s, 0.0, 1e-12);
  }
}

TEST(EventSimulation, SendingNeverMakesTheStepShorter) {
  for (const Shape& s : shapes()) {
    for (auto [kind, v] : {std::pair{Schedule::one_f_one_b, 1}, std::pair{Schedule::gpipe, 1},
                           std::pair{Schedule::interleaved, 2}}) {
      SCOPED_TRACE(describe(s, v) + " " + std::string(core::to_string(kind)));
      const double free = run(kind, s.p, v, s.m, synthetic_costs(s.p, v)).step_time_s;
      double previous = free;
      for (double send : {0.01, 0.1, 0.5}) {
        const Timeline t = run(kind, s.p, v, s.m, synthetic_costs(s.p, v, send));
        EXPECT_GE(t.step_time_s, previous * (1 - 1e-12)) << "send " << send;
        // At least one activation crosses every stage boundary on the critical path.
        EXPECT_GE(t.step_time_s, free + send * (s.p - 1) * (1 - 1e-12)) << "send " << send;
        previous = t.step_time_s;
        expect_breakdown_sums_to_step(t);
        for (const RankTotals& r : t.ranks) EXPECT_GT(r.pp_comm_s, 0.0);
      }
    }
  }
}

// overlap-grad-reduce: the same reduction in `count` buckets, bucket k's gradients final at
// (k + 1)/count of each stage's backward (backward 2/v).
StepCosts with_buckets(StepCosts costs, int32_t v, double sync, int count, double gather_each = 0) {
  costs.bucket_lists.assign(1, {});
  costs.stage_bucket_list.assign(costs.backward.size(), 0);
  for (std::vector<GradientBucket>& stage : costs.bucket_lists)
    for (int k = 0; k < count; ++k)
      stage.push_back({1, (2.0 / v) * double(k + 1) / count, sync / (double(count) * v), (1.0 / v) * double(count - 1 - k) / count,
                       gather_each});
  costs.grad_sync_s.assign(costs.grad_sync_s.size(), 0.0);
  return costs;
}

TEST(EventSimulation, OverlappedGradientReductionIsNeverLonger) {
  for (const Shape& s : shapes()) {
    for (auto [kind, v] : {std::pair{Schedule::one_f_one_b, 1}, std::pair{Schedule::gpipe, 1},
                           std::pair{Schedule::interleaved, 2}}) {
      SCOPED_TRACE(describe(s, v) + " " + std::string(core::to_string(kind)));
      for (double sync : {0.1, 1.0, 10.0}) {
        const StepCosts costs = synthetic_costs(s.p, v, 0.05, sync, 0.2);
        const Timeline exposed = run(kind, s.p, v, s.m, costs);
        const Timeline overlapped = run(kind, s.p, v, s.m, with_buckets(costs, v, sync, 4));
        EXPECT_LE(overlapped.step_time_s, exposed.step_time_s * (1 + 1e-12)) << "sync " << sync;
        // Without overlap the whole reduction and the optimizer step follow the pipeline.
        const double no_sync = run(kind, s.p, v, s.m, synthetic_costs(s.p, v, 0.05)).step_time_s;
        expect_near_relative(exposed.step_time_s, no_sync + sync + 0.2);
        // With overlap the last bucket of the first chunk, complete only at the end of the last
        // backward, is always exposed.
        EXPECT_GE(overlapped.step_time_s, (no_sync + sync / (4.0 * v) + 0.2) * (1 - 1e-12)) << "sync " << sync;
        if (v == 1) {
          // One chunk: the buckets chain on the data-parallel stream from their ready times
          // (0.5, 1, 1.5, 2 of the 2-unit backward), so the last ends at max_k(ready_k + (4 − k)·r).
          const double r = sync / 4.0;
          double end = 0;
          for (int k = 0; k < 4; ++k) end = std::max(end, 0.5 * (k + 1) + (4 - k) * r);
          expect_near_relative(overlapped.step_time_s, no_sync + (end - 2.0) + 0.2);
        }
        for (const Timeline* t : {&exposed, &overlapped}) {
          expect_breakdown_sums_to_step(*t);
          for (const RankTotals& r : t->ranks) {
            expect_near_relative(r.dp_comm_s, sync);
            EXPECT_LE(r.dp_comm_exposed_s, r.dp_comm_s * (1 + 1e-12));
            expect_near_relative(r.optimizer_s, 0.2);
          }
        }
      }
    }
  }
}

// overlap-param-gather: the gathers run from the start of the step; the first forward of each
// chunk waits only for what its layers need, and never makes the step shorter than without them.
TEST(EventSimulation, OverlappedParameterGatherDelaysOnlyTheFirstForward) {
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(describe(s, 1));
    const StepCosts base = with_buckets(synthetic_costs(s.p, 1, 0.05, 0.0, 0.2), 1, 0.4, 4);
    const Timeline free = run(Schedule::one_f_one_b, s.p, 1, s.m, base);
    double previous = free.step_time_s;
    for (double gather : {0.01, 0.25, 1.0}) {
      const Timeline t = run(Schedule::one_f_one_b, s.p, 1, s.m, with_buckets(base, 1, 0.4, 4, gather));
      EXPECT_GE(t.step_time_s, previous * (1 - 1e-12)) << "gather " << gather;
      previous = t.step_time_s;
      // Rank 0 starts at once: its first forward waits until the bucket its layer k needs is in
      // (gathered in forward order: bucket 3 first, needed at 0; bucket k at (3 − k)/4).
      double wait = 0;
      for (int k = 0; k < 4; ++k) wait = std::max(wait, gather * (4 - k) - (3 - k) / 4.0);
      EXPECT_GE(t.ranks[0].dp_comm_exposed_s, wait * (1 - 1e-9)) << "gather " << gather;
      expect_near_relative(t.ranks[0].dp_comm_s, 0.4 + 4 * gather);
      expect_breakdown_sums_to_step(t);
    }
  }
}

TEST(EventSimulation, RecordingTheTimelineDoesNotChangeTheStep) {
  for (const Shape& s : shapes()) {
    for (auto [kind, v] : {std::pair{Schedule::one_f_one_b, 1}, std::pair{Schedule::gpipe, 1},
                           std::pair{Schedule::interleaved, 2}, std::pair{Schedule::interleaved, 4}}) {
      SCOPED_TRACE(describe(s, v));
      const StepCosts costs = synthetic_costs(s.p, v, 0.03, 0.7, 0.1);
      const Timeline recorded = run(kind, s.p, v, s.m, with_buckets(costs, v, 1.0, 3, 0.1), true);
      const Timeline bare = run(kind, s.p, v, s.m, with_buckets(costs, v, 1.0, 3, 0.1), false);
      EXPECT_EQ(bare.step_time_s, recorded.step_time_s);
      ASSERT_EQ(bare.ranks.size(), recorded.ranks.size());
      for (size_t r = 0; r < bare.ranks.size(); ++r) {
        EXPECT_EQ(bare.ranks[r].end_s, recorded.ranks[r].end_s);
        EXPECT_EQ(bare.ranks[r].idle_s, recorded.ranks[r].idle_s);
      }
      EXPECT_TRUE(bare.events.empty());
      EXPECT_TRUE(bare.transfers.empty());
      EXPECT_FALSE(recorded.events.empty());
      EXPECT_FALSE(recorded.transfers.empty());
    }
  }
}

TEST(EventSimulation, TimelineHoldsEveryComputeActionOnce) {
  const int32_t p = 4, v = 2, m = 8;
  const Timeline t = run(Schedule::interleaved, p, v, m, synthetic_costs(p, v, 0.01));
  std::vector<int> compute_events(size_t(p), 0);
  for (const TimelineEvent& e : t.events) {
    EXPECT_GE(e.start_s, 0.0);
    EXPECT_LE(e.start_s + e.duration_s, t.step_time_s * (1 + 1e-12));
    if (e.stream == Stream::compute) ++compute_events[size_t(e.pipeline_rank)];
  }
  for (int c : compute_events) EXPECT_EQ(c, 2 * m * v);
  // Every transfer ends no earlier than it starts and links neighbouring pipeline ranks.
  for (const Transfer& x : t.transfers) {
    EXPECT_GE(x.end_s, x.start_s);
    EXPECT_EQ((x.from_rank - x.to_rank + p) % p == 1 || (x.to_rank - x.from_rank + p) % p == 1, true);
  }
}

// A real plan whose pipeline stages sit on two nodes: tp 4, pp 4 on 2 × 8 devices, so stages 0–1
// share node 0 and stages 2–3 node 1. An activation from stage 1 to 2 and a gradient from stage 2
// to 1 cross the network; every other transfer stays inside a node.
TEST(EventSimulation, EachTransferCostsTheLinkBetweenItsEnds) {
  core::Plan plan;
  plan.model = core::find_model_preset("gpt2-350m").spec;
  plan.model.padded_vocab_size = 50304;
  plan.training.global_batch_size = 16;
  plan.cluster.nodes = 2;
  plan.cluster.devices_per_node = 8;
  plan.cluster.profile = "a100-80gb-dgx";
  plan.parallel.tensor_parallel = 4;
  plan.parallel.pipeline_parallel = 4;
  plan.parallel.data_parallel = 1;
  plan.parallel.micro_batch_size = 2;
  plan.validate();
  const core::Profile profile = core::resolve_profile("a100-80gb-dgx");
  const CostModel costs(profile, plan.training.dtype);
  const StepCosts step = step_costs(plan, costs);
  const Timeline t = simulate_schedule(core::build_schedule(Schedule::one_f_one_b, 4, 1, 8), step, {});
  const double bytes = 2.0 * 1024 * 1024 * 2 / 4;  // b·s·h bf16 elements split over the tensor ranks
  const core::RankLayout layout = core::RankLayout::of(plan.parallel);
  ASSERT_FALSE(t.transfers.empty());
  for (const Transfer& x : t.transfers) {
    const bool crosses = core::node_of(layout.rank({0, 0, x.from_rank}), 8) != core::node_of(layout.rank({0, 0, x.to_rank}), 8);
    const double expected = costs.point_to_point_s(bytes, crosses);
    EXPECT_NEAR(x.end_s - x.start_s, expected, 1e-9 * expected)
        << x.name << " from " << x.from_rank << " to " << x.to_rank;
  }
}

}  // namespace
}  // namespace loom::sim
