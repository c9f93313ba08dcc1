#pragma once
// What each action of the schedule costs on a given plan and profile: forward and backward of
// every virtual stage (its own layers, Plan::virtual_stage_layers, plus the embedding on the first
// and the output layer with the loss on the last), the point-to-point transfers between stages,
// the data-parallel gradient reduction and the optimizer step of every pipeline rank. On a mixed
// cluster each pipeline rank is costed on its own device group's profile.

#include "core/limits.hpp"
#include "core/plan.hpp"
#include "simulator/cost_model.hpp"

#include <string_view>
#include <vector>

namespace loom::sim {

enum class Stream : uint8_t { compute, tp_comm, pp_comm, dp_comm };
std::string_view to_string(Stream stream);

// A stretch of one action, for the timeline: e.g. "layer 3" on compute, then its TP collectives.
struct Segment {
  Stream stream = Stream::compute;
  std::string_view name;
  double duration_s = 0;
  // Runs beside the compute segment before it (tp-comm-overlap) instead of after it: it does
  // not advance the action's clock, and its duration is not part of total_s().
  bool beside_compute = false;
};

struct ActionCost {
  double compute_s = 0;    // GEMMs and memory-bound kernels of the pass itself
  double recompute_s = 0;  // forward work repeated before a backward
  double tp_comm_s = 0;    // tensor-parallel collectives that hold the compute up (exposed)
  double tp_comm_hidden_s = 0;  // tensor-parallel collectives run beside GEMMs (tp-comm-overlap)
  std::vector<Segment> segments;  // in execution order; the durations of those not beside compute sum to total_s()
  double total_s() const { return compute_s + recompute_s + tp_comm_s; }
};

// One gradient bucket of a virtual stage (Megatron-Core's DistributedDataParallel): parameters
// grouped in reverse order of use, each bucket's data-parallel reduction starting as soon as
// the last microbatch's backward has made all its gradients final, and (overlap-param-gather)
// its parameters all-gathered at the start of the next step, before its first layer's forward.
struct GradientBucket {
  int64_t parameters = 0;
  double ready_s = 0;    // after the start of the stage's backward, when the bucket's last gradient is final
  double reduce_s = 0;   // its reduce-scatter (distributed optimizer) or all-reduce over the data group
  double needed_s = 0;   // after the start of the stage's forward, when its first layer begins
  double gather_s = 0;   // the all-gather of its updated parameters (overlap-param-gather), else 0
};

struct SimulationOptions {
  bool record_timeline = true;
  // A recorded timeline longer than this is refused (InvalidInput) rather than grown without bound.
  int64_t max_timeline_events = core::limits::kMaxTimelineEvents;
};

struct StepCosts {
  std::vector<ActionCost> forward;   // by virtual stage
  std::vector<ActionCost> backward;  // by virtual stage
  std::vector<double> send_s;        // by virtual stage s: one transfer over the link between s and s + 1
  std::vector<bool> send_rendezvous; // by virtual stage, as send_s: the sender waits for the receiver
  // By pipeline rank: the data-parallel reduction left for the grad_sync action (all of it
  // without overlap-grad-reduce) and the tied-embedding reduction between the first and last stage.
  std::vector<double> grad_sync_s;
  // overlap-grad-reduce: each virtual stage's buckets, in the order they fill during the backward
  // (the last layers' first). Stages holding the same parts share one list (a search builds
  // millions of these): bucket_lists holds the distinct lists, stage_bucket_list says which is
  // each stage's. Both empty without overlap-grad-reduce.
  std::vector<std::vector<GradientBucket>> bucket_lists;
  std::vector<uint16_t> stage_bucket_list;  // p·v ≤ num-layers ≤ 2^14 (core/limits.hpp) lists at most
  bool has_buckets() const { return !stage_bucket_list.empty(); }
  const std::vector<GradientBucket>& buckets(int64_t stage) const {
    return bucket_lists[stage_bucket_list[size_t(stage)]];
  }
  // By pipeline rank: compute that runs while a data-parallel bucket is on the links is this many
  // times slower (its group's profile's overlap.compute_slowdown). Empty: 1 for every rank.
  std::vector<double> overlap_compute_slowdown;
  double compute_slowdown(int64_t rank) const {
    return overlap_compute_slowdown.empty() ? 1.0 : overlap_compute_slowdown[size_t(rank)];
  }
  std::vector<double> optimizer_s;   // by pipeline rank: AdamW, gradient norm, ZeRO-1 all-gather
  std::vector<double> optimizer_comm_s;  // by pipeline rank: the part of optimizer_s that is communication
  std::vector<double> grad_norm_s;       // by pipeline rank: the part of optimizer_s before the step statistics
  // The step's one world-wide collective: the loss and the squared gradient norm of every rank,
  // summed (two doubles), between the gradient norm and the AdamW update. Every rank waits there
  // for the last one (the event simulation's barrier).
  double step_statistics_s = 0;
};

// Compute and tensor-parallel communication time of a list of ops.
struct OpsTime {
  double compute_s = 0;
  double comm_s = 0;         // exposed
  double comm_hidden_s = 0;  // beside GEMMs (tp-comm-overlap)
};

// Costs of one microbatch through one transformer layer, the embedding and the output layer.
// They depend only on the model, dtype, tensor-parallel size and placement, sequence parallelism,
// micro-batch size and recompute mode, so a search shares them across many plans.
struct LayerCosts {
  OpsTime layer_forward, layer_backward, layer_recompute;
  OpsTime embedding_forward, embedding_backward;
  OpsTime output_forward, output_backward;
  // Megatron's scatter/gather between pipeline stages without sequence parallelism (Narayanan et
  // al. SC21 §4.1): each tensor rank sends 1/t of the activation, and the receiver all-gathers the
  // whole b·s·h over its tensor group before using it. Charged at the start of every forward but
  // the first stage's and every backward but the last stage's; zero with sequence parallelism
  // (the pipeline tensor is already sharded along the sequence) or t = 1.
  OpsTime pipeline_gather;
};
LayerCosts layer_costs(const core::Plan& plan, const CostModel& costs);

// The costs of one device group of a mixed cluster (both built for the plan's dtype and devices
// per node); a cluster of one kind is one group.
struct GroupCosts {
  const CostModel* costs = nullptr;
  const LayerCosts* layers = nullptr;
};

// `groups`: one entry per plan.cluster.device_groups(), in order; each pipeline rank is costed on
// its group's entry (Plan::pipeline_rank_groups): its stages' compute and tensor-parallel
// collectives, its data-parallel reduction and its optimizer step. A transfer between two stages
// on different groups crosses nodes and runs at the pace of the slower end: the larger of the two
// profiles' inter-node point-to-point times (a message is as fast as its slower link; no profile
// describes the link between two kinds of node). Collectives spanning groups (the tied-embedding
// reduction between the first and last stage, the world-wide step statistics) likewise take the
// slowest group's time.
// `with_segments` fills ActionCost::segments (for the timeline); searches skip it.
StepCosts step_costs(const core::Plan& plan, const std::vector<GroupCosts>& groups, bool with_segments = true);
// One kind of device.
StepCosts step_costs(const core::Plan& plan, const CostModel& costs, const LayerCosts& layers,
                     bool with_segments = true);
StepCosts step_costs(const core::Plan& plan, const CostModel& costs);

// Where the members of a group of ranks sit, with devices_per_node devices per node.
GroupPlacement placement_of(const std::vector<int64_t>& ranks, int64_t devices_per_node);
// The same for the ranks first, first + stride, … (count of them): every Megatron group is such a
// progression. O(1) in the usual cases (stride dividing or multiple of the node size).
GroupPlacement progression_placement(int64_t first, int64_t stride, int64_t count, int64_t devices_per_node);

}  // namespace loom::sim
