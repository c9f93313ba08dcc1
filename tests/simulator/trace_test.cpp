#include "simulator/trace.hpp"

#include "core/default_plan.hpp"
#include "core/profile.hpp"
#include "simulator/prediction.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace loom::sim {
namespace {

// The trace events whose "ph" is `phase`, in order.
std::vector<core::Json> events_of(const core::Json& trace, std::string_view phase) {
  std::vector<core::Json> found;
  for (const core::Json& e : trace.at("traceEvents"))
    if (e.at("ph") == phase) found.push_back(e);
  return found;
}

// The args.name of metadata event `name` for (pid, tid); empty when there is none.
std::string metadata_name(const core::Json& trace, std::string_view name, int64_t pid,
                          int64_t tid) {
  for (const core::Json& e : events_of(trace, "M"))
    if (e.at("name") == name && e.at("pid") == pid && e.at("tid") == tid)
      return e.at("args").at("name");
  return "";
}

// Two pipeline ranks: rank 0 runs F0 (with a TP collective inside) and sends its activation to
// rank 1, which runs B0 and then the gradient reduction.
Prediction small_prediction() {
  Prediction p;
  p.profile_name = "test-profile";
  p.step_time_s = 0.006;
  p.timeline.step_time_s = 0.006;
  p.timeline.events = {
      {0, Stream::compute, "F0", 0.0, 0.0015, 0, 0},
      {0, Stream::tp_comm, "all-reduce", 0.0005, 0.0002, 0, 0},
      {0, Stream::pp_comm, "send activation 0", 0.0015, 0.0003, 0, 0},
      {1, Stream::pp_comm, "recv activation 0", 0.0015, 0.0003, 0, 0},
      {1, Stream::compute, "B0", 0.002, 0.003, 0, 0},
      {1, Stream::dp_comm, "grad sync", 0.005, 0.001, -1, 0},
  };
  p.timeline.transfers = {{0, 1, 0.0015, 0.0018, "activation 0"}};
  return p;
}

TEST(ChromeTrace, OneCompleteEventPerTimelineEventInMicroseconds) {
  const core::Plan plan = core::default_plan();
  const Prediction prediction = small_prediction();
  const core::Json trace = chrome_trace(plan, prediction);
  ASSERT_TRUE(trace.contains("traceEvents"));
  ASSERT_TRUE(trace.at("traceEvents").is_array());
  EXPECT_EQ(trace.at("displayTimeUnit"), "ms");

  const std::vector<core::Json> xs = events_of(trace, "X");
  ASSERT_EQ(xs.size(), prediction.timeline.events.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    const TimelineEvent& e = prediction.timeline.events[i];
    EXPECT_EQ(xs[i].at("name"), e.name);
    EXPECT_EQ(xs[i].at("pid"), e.pipeline_rank);
    EXPECT_EQ(xs[i].at("tid"), static_cast<int>(e.stream));
    EXPECT_EQ(xs[i].at("cat"), to_string(e.stream));
    EXPECT_DOUBLE_EQ(xs[i].at("ts").get<double>(), e.start_s * 1e6);
    EXPECT_DOUBLE_EQ(xs[i].at("dur").get<double>(), e.duration_s * 1e6);
  }
  EXPECT_DOUBLE_EQ(xs[0].at("dur").get<double>(), 1500.0);  // the 1.5 ms F0
  EXPECT_DOUBLE_EQ(xs[4].at("ts").get<double>(), 2000.0);

  // Forward and backward compute stand out by colour; communication keeps the default.
  EXPECT_EQ(xs[0].at("cname"), "thread_state_running");
  EXPECT_EQ(xs[4].at("cname"), "thread_state_iowait");
  EXPECT_FALSE(xs[1].contains("cname"));
  EXPECT_FALSE(xs[5].contains("cname"));

  EXPECT_EQ(xs[0].at("args").at("microbatch"), 0);
  EXPECT_EQ(xs[0].at("args").at("chunk"), 0);
  EXPECT_FALSE(xs[5].contains("args"));  // grad sync belongs to no microbatch
}

TEST(ChromeTrace, NamesEveryRankAndStream) {
  const core::Json trace = chrome_trace(core::default_plan(), small_prediction());
  // GPT-2 124M has 12 layers; two pipeline ranks hold 6 each.
  EXPECT_EQ(metadata_name(trace, "process_name", 0, 0), "pipeline rank 0 (layers 0–5)");
  EXPECT_EQ(metadata_name(trace, "process_name", 1, 0), "pipeline rank 1 (layers 6–11)");
  const std::map<int, std::string> streams = {
      {0, "compute"}, {1, "tp comm"}, {2, "pp comm"}, {3, "dp comm"}};
  for (int64_t pid = 0; pid < 2; ++pid)
    for (const auto& [tid, name] : streams)
      EXPECT_EQ(metadata_name(trace, "thread_name", pid, tid), name);

  int sort_indices = 0;
  for (const core::Json& e : events_of(trace, "M"))
    if (e.at("name") == "process_sort_index" || e.at("name") == "thread_sort_index") ++sort_indices;
  EXPECT_EQ(sort_indices, 2 * (1 + 4));
}

TEST(ChromeTrace, InterleavedRanksListTheirChunks) {
  core::Plan plan = core::default_plan();
  plan.parallel.schedule = core::Schedule::interleaved;
  plan.parallel.layers_per_virtual_stage = 3;  // 6 layers per rank → 2 chunks of 3
  const core::Json trace = chrome_trace(plan, small_prediction());
  EXPECT_EQ(metadata_name(trace, "process_name", 0, 0),
            "pipeline rank 0 (2 chunks: layers 0–2, 6–8)");
  EXPECT_EQ(metadata_name(trace, "process_name", 1, 0),
            "pipeline rank 1 (2 chunks: layers 3–5, 9–11)");
}

TEST(ChromeTrace, TransferBecomesAFlowFromSenderToReceiver) {
  const core::Json trace = chrome_trace(core::default_plan(), small_prediction());
  const std::vector<core::Json> starts = events_of(trace, "s");
  const std::vector<core::Json> finishes = events_of(trace, "f");
  ASSERT_EQ(starts.size(), 1u);
  ASSERT_EQ(finishes.size(), 1u);
  const core::Json& s = starts[0];
  const core::Json& f = finishes[0];
  EXPECT_EQ(s.at("id"), f.at("id"));
  EXPECT_EQ(f.at("bp"), "e");
  EXPECT_EQ(s.at("pid"), 0);
  EXPECT_EQ(f.at("pid"), 1);
  EXPECT_EQ(s.at("tid"), static_cast<int>(Stream::pp_comm));
  EXPECT_EQ(f.at("tid"), static_cast<int>(Stream::pp_comm));
  EXPECT_DOUBLE_EQ(s.at("ts").get<double>(), 1500.0);
  EXPECT_DOUBLE_EQ(f.at("ts").get<double>(), 1800.0);
  EXPECT_EQ(s.at("cat"), "pp transfer");
  EXPECT_EQ(s.at("name"), "activation 0");
}

TEST(ChromeTrace, CarriesThePlanAndRoundTripsThroughText) {
  const core::Plan plan = core::default_plan();
  const core::Json trace = chrome_trace(plan, small_prediction());
  const core::Json& other = trace.at("otherData");
  EXPECT_EQ(other.at("model"), plan.model.name);
  EXPECT_EQ(other.at("profile"), "test-profile");
  EXPECT_DOUBLE_EQ(other.at("step_time_s").get<double>(), 0.006);
  EXPECT_EQ(other.at("tensor_parallel"), 2);
  EXPECT_EQ(other.at("pipeline_parallel"), 2);
  EXPECT_EQ(other.at("data_parallel"), 2);

  const std::string text = trace.dump();
  EXPECT_EQ(core::Json::parse(text), trace);
  EXPECT_EQ(chrome_trace(plan, small_prediction()).dump(), text);  // deterministic
}

// The whole simulator on the default plan: every timeline event and transfer reaches the trace.
TEST(ChromeTrace, SimulatedDefaultPlanExportsItsWholeTimeline) {
  const core::Plan plan = core::default_plan();
  const Prediction prediction = simulate(plan, core::resolve_profile("a100-80gb-dgx"));
  ASSERT_FALSE(prediction.timeline.events.empty());
  ASSERT_FALSE(prediction.timeline.transfers.empty());
  const core::Json trace = chrome_trace(plan, prediction);
  EXPECT_EQ(events_of(trace, "X").size(), prediction.timeline.events.size());

  std::map<int64_t, int> uses;
  for (const core::Json& e : trace.at("traceEvents"))
    if (e.at("ph") == "s" || e.at("ph") == "f") ++uses[e.at("id").get<int64_t>()];
  EXPECT_EQ(uses.size(), prediction.timeline.transfers.size());
  for (const auto& [id, count] : uses) EXPECT_EQ(count, 2) << "flow id " << id;
  EXPECT_EQ(core::Json::parse(trace.dump()), trace);
}

}  // namespace
}  // namespace loom::sim

namespace loom::sim {
namespace {

// Overlapped communication sits on its own lane (tid) of the pipeline rank, under the compute
// that hides it: gradient buckets during the last backward, TP collectives beside the GEMMs.
TEST(ChromeTrace, OverlappedTransfersRunOnTheirOwnLanesBesideCompute) {
  core::Plan plan = core::default_plan();
  plan.cluster.nodes = 1;
  plan.cluster.devices_per_node = 4;
  plan.cluster.profile = "a100-80gb-dgx";
  plan.training.global_batch_size = 16;
  plan.parallel.tensor_parallel = 2;
  plan.parallel.pipeline_parallel = 1;
  plan.parallel.data_parallel = 2;
  plan.parallel.micro_batch_size = 2;
  plan.parallel.sequence_parallel = true;
  plan.parallel.distributed_optimizer = true;
  plan.parallel.attention_backend = core::AttentionBackend::flash;
  plan.parallel.overlap_grad_reduce = plan.parallel.overlap_param_gather = plan.parallel.tp_comm_overlap = true;
  plan.parallel.ddp_bucket_size = 1'000'000;
  plan.validate();
  const Prediction prediction = simulate(plan, core::resolve_profile("a100-80gb-dgx"));
  const core::Json trace = chrome_trace(plan, prediction);
  std::vector<core::Json> compute, buckets, hidden_tp;
  for (const core::Json& e : events_of(trace, "X")) {
    const std::string name = e.at("name");
    const std::string lane = metadata_name(trace, "thread_name", e.at("pid"), e.at("tid"));
    if (lane == "compute" && name.starts_with("B")) compute.push_back(e);
    if (lane == "dp comm" && name.starts_with("gradient reduction")) buckets.push_back(e);
    if (lane == "tp comm" && name.ends_with("(beside compute)")) hidden_tp.push_back(e);
  }
  ASSERT_FALSE(compute.empty());
  ASSERT_GT(buckets.size(), 1u);
  ASSERT_FALSE(hidden_tp.empty());
  // At least one bucket's reduction starts while the last backward still runs.
  const core::Json& last_backward = compute.back();
  const double backward_end = last_backward.at("ts").get<double>() + last_backward.at("dur").get<double>();
  EXPECT_LT(buckets.front().at("ts").get<double>(), backward_end);
  EXPECT_GE(buckets.front().at("ts").get<double>(), last_backward.at("ts").get<double>());
}

}  // namespace
}  // namespace loom::sim
