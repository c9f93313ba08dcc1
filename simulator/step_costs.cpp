#include "simulator/step_costs.hpp"

#include "core/error.hpp"
#include "core/kernel_bytes.hpp"
#include "core/model_arithmetic.hpp"
#include "core/rank_layout.hpp"

#include <algorithm>
#include <array>
#include <map>

namespace loom::sim {

std::string_view to_string(Stream stream) {
  switch (stream) {
    case Stream::compute: return "compute";
    case Stream::tp_comm: return "tp comm";
    case Stream::pp_comm: return "pp comm";
    case Stream::dp_comm: return "dp comm";
  }
  return "?";
}

namespace {

// With tp-comm-overlap, Megatron-Core (Transformer Engine's userbuffers) splits each
// sequence-parallel all-gather and reduce-scatter into chunks that run beside the GEMM consuming
// or producing them: the profile's hidden fraction of the collective hides, up to the GEMM's own
// time, and the GEMM slows by the profile's contention factor while it does. All-reduces (no
// sequence parallelism, the loss) stay exposed.
OpsTime time_ops(const std::vector<Op>& ops, const CostModel& costs, const GroupPlacement& tensor_group,
                 bool tp_comm_overlap) {
  const core::OverlapModel& overlap = costs.profile().overlap;
  OpsTime t;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    const double time = costs.op_s(op, tensor_group);
    if (op.kind != OpKind::collective) {
      t.compute_s += time;
      continue;
    }
    const bool splittable = op.collective == Collective::all_gather || op.collective == Collective::reduce_scatter;
    if (!tp_comm_overlap || !splittable || overlap.tp_comm_hidden_fraction <= 0) {
      t.comm_s += time;
      continue;
    }
    // The nearest GEMM in the list: the one the gathered input feeds, or whose output is scattered.
    double gemm_s = 0;
    for (size_t distance = 1; distance < ops.size() && gemm_s == 0; ++distance) {
      if (i + distance < ops.size() && ops[i + distance].kind == OpKind::gemm)
        gemm_s = costs.op_s(ops[i + distance], tensor_group);
      else if (distance <= i && ops[i - distance].kind == OpKind::gemm)
        gemm_s = costs.op_s(ops[i - distance], tensor_group);
    }
    const double hidden = std::min(overlap.tp_comm_hidden_fraction * time, gemm_s);
    t.comm_s += time - hidden;
    t.comm_hidden_s += hidden;
    t.compute_s += (overlap.compute_slowdown - 1.0) * hidden;
  }
  return t;
}

void add(ActionCost& cost, std::string_view name, const OpsTime& t, double recompute_s, bool with_segments) {
  cost.compute_s += t.compute_s;
  cost.recompute_s += recompute_s;
  cost.tp_comm_s += t.comm_s;
  cost.tp_comm_hidden_s += t.comm_hidden_s;
  if (!with_segments) return;
  if (recompute_s > 0) cost.segments.push_back({Stream::compute, "recompute", recompute_s});
  cost.segments.push_back({Stream::compute, name, t.compute_s});
  if (t.comm_hidden_s > 0) cost.segments.push_back({Stream::tp_comm, name, t.comm_hidden_s, true});
  if (t.comm_s > 0) cost.segments.push_back({Stream::tp_comm, name, t.comm_s});
}

// What a virtual stage's forward and backward hold, in forward order, for bucketing: each part's
// parameters on one device, when its forward begins and when its backward has finished.
struct StagePart {
  int64_t parameters = 0;
  double forward_start_s = 0;
  double backward_done_s = 0;
};

// Megatron-Core's buckets: parameters taken in reverse order of use; a bucket closes once it
// holds at least `bucket_parameters` (a layer is never split, as Megatron never splits a
// parameter). Reductions and gathers run over `data_group`.
std::vector<GradientBucket> make_buckets(const std::vector<StagePart>& parts, int64_t bucket_parameters,
                                         const core::Plan& plan, const CostModel& costs,
                                         const GroupPlacement& data_group) {
  const bool distributed = plan.parallel.distributed_optimizer && plan.parallel.data_parallel > 1;
  const double element = core::bytes_per_element(plan.training.dtype);
  std::vector<GradientBucket> buckets;
  GradientBucket open;
  const auto close = [&] {
    // fp32 main gradients are reduced (as without overlap); 16-bit parameters are gathered.
    open.reduce_s = costs.collective_s(distributed ? Collective::reduce_scatter : Collective::all_reduce,
                                       double(open.parameters) * 4.0, data_group);
    open.gather_s = plan.parallel.overlap_param_gather
                        ? costs.collective_s(Collective::all_gather, double(open.parameters) * element, data_group)
                        : 0.0;
    buckets.push_back(open);
    open = GradientBucket{};
  };
  for (auto part = parts.rbegin(); part != parts.rend(); ++part) {
    if (part->parameters == 0) continue;
    open.parameters += part->parameters;
    open.ready_s = part->backward_done_s;  // parts finish their backward in this order
    open.needed_s = part->forward_start_s;  // and the earliest part in forward order is the last added
    if (open.parameters >= bucket_parameters) close();
  }
  if (open.parameters > 0) close();
  return buckets;
}

}  // namespace

GroupPlacement progression_placement(int64_t first, int64_t stride, int64_t count, int64_t devices_per_node) {
  const int64_t d = devices_per_node;
  if (count <= 1) return {count, count};
  if (stride % d == 0) return {count, 1};  // every member on a node of its own
  if (d % stride == 0 && first % stride == 0) {
    // Members are the multiples of `stride` in [first, last]; whole nodes in between hold d/stride.
    const int64_t last = first + (count - 1) * stride;
    const int64_t first_node = first / d, last_node = last / d;
    if (first_node == last_node) return {count, count};
    const int64_t in_first = ((first_node + 1) * d - first) / stride;
    const int64_t in_last = (last - last_node * d) / stride + 1;
    const int64_t most = std::max({in_first, in_last, last_node - first_node >= 2 ? d / stride : int64_t(0)});
    return {count, most};
  }
  int64_t most = 0, run = 0, node = -1;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t here = (first + i * stride) / d;
    run = here == node ? run + 1 : 1;
    node = here;
    most = std::max(most, run);
  }
  return {count, most};
}

GroupPlacement placement_of(const std::vector<int64_t>& ranks, int64_t devices_per_node) {
  std::map<int64_t, int64_t> per_node;
  for (int64_t r : ranks) ++per_node[core::node_of(r, devices_per_node)];
  int64_t most = 0;
  for (const auto& [node, count] : per_node) most = std::max(most, count);
  return {int64_t(ranks.size()), most};
}

LayerCosts layer_costs(const core::Plan& plan, const CostModel& costs) {
  // Tensor groups are blocks of t consecutive ranks (Megatron order); rank 0's stands for all.
  const GroupPlacement tensor_group =
      progression_placement(0, 1, plan.parallel.tensor_parallel, plan.cluster.devices_per_node);
  const LayerOps layer = transformer_layer_ops(plan);
  const LayerOps embedding = embedding_ops(plan);
  const LayerOps output = output_layer_ops(plan);
  const bool overlap = plan.parallel.tp_comm_overlap;
  const auto time = [&](const std::vector<Op>& ops) { return time_ops(ops, costs, tensor_group, overlap); };
  OpsTime pipeline_gather;
  if (plan.parallel.tensor_parallel > 1 && !plan.parallel.sequence_parallel)
    pipeline_gather.comm_s =
        costs.collective_s(Collective::all_gather,
                           double(plan.parallel.micro_batch_size) * double(plan.model.seq_length) *
                               double(plan.model.hidden_size) * core::bytes_per_element(plan.training.dtype),
                           tensor_group);
  return {time(layer.forward),      time(layer.backward), time(layer.recompute), time(embedding.forward),
          time(embedding.backward), time(output.forward), time(output.backward), pipeline_gather};
}

namespace {

// Each virtual stage's buckets, from its parts' places in its forward and backward actions.
// `stage_layers`: Plan::virtual_stage_layers; `rank_groups`: each pipeline rank's device group.
void add_buckets(const core::Plan& plan, const std::vector<GroupCosts>& groups, const std::vector<int64_t>& stage_layers,
                 const std::vector<int64_t>& rank_groups, StepCosts& step) {
  const int64_t p = plan.parallel.pipeline_parallel;
  const int64_t stages = int64_t(stage_layers.size());
  const core::RankLayout layout = core::RankLayout::of(plan.parallel);
  const int64_t per_layer = core::layer_parameters_per_device(plan);
  const auto total = [](const OpsTime& t) { return t.compute_s + t.comm_s; };
  // Every pipeline rank's data group has the same shape (Megatron order): rank (0, 0, 0)'s stands for all.
  const GroupPlacement data_group = progression_placement(layout.rank({0, 0, 0}), plan.parallel.tensor_parallel,
                                                          plan.parallel.data_parallel, plan.cluster.devices_per_node);
  step.overlap_compute_slowdown.resize(size_t(p));
  for (int64_t r = 0; r < p; ++r)
    step.overlap_compute_slowdown[size_t(r)] =
        groups[size_t(rank_groups[size_t(r)])].costs->profile().overlap.compute_slowdown;
  // The parts of a stage, by whether it holds the input embedding and the output layer, its
  // layers and its device group.
  const auto buckets_of = [&](bool first, bool last, int64_t layers, int64_t group) {
    const LayerCosts& c = *groups[size_t(group)].layers;
    const double layer_backward = total(c.layer_backward) + total(c.layer_recompute);
    // Backward order: output layer (or the gather of the received gradient), layers last to first
    // (each after its recompute), embedding; forward order: embedding (or the gather of the
    // received activation), layers, output layer.
    const double output_backward = last ? total(c.output_backward) : total(c.pipeline_gather);
    const double layers_forward_start = first ? total(c.embedding_forward) : total(c.pipeline_gather);
    std::vector<StagePart> parts;  // forward order
    if (first) {
      const double done = output_backward + double(layers) * layer_backward + total(c.embedding_backward);
      parts.push_back({core::input_parameters_per_device(plan), 0.0, done});
    }
    for (int64_t l = 0; l < layers; ++l)
      parts.push_back({per_layer, layers_forward_start + double(l) * total(c.layer_forward),
                       output_backward + double(layers - l) * layer_backward});
    if (last)
      parts.push_back({core::output_parameters_per_device(plan),
                       layers_forward_start + double(layers) * total(c.layer_forward), output_backward});
    return make_buckets(parts, plan.parallel.grad_bucket_parameters(), plan, *groups[size_t(group)].costs, data_group);
  };
  // Stages alike in (first, last, layers, group) share one list: with an even split on one kind of
  // device, three at most (the first stage's, the last's, every other's).
  struct Key {
    bool first, last;
    int64_t layers, group;
    bool operator==(const Key&) const = default;
  };
  std::vector<Key> keys;
  step.stage_bucket_list.resize(size_t(stages));
  for (int64_t s = 0; s < stages; ++s) {
    const Key key{s == 0, s == stages - 1, stage_layers[size_t(s)], rank_groups[size_t(s % p)]};
    size_t list = std::find(keys.begin(), keys.end(), key) - keys.begin();
    if (list == keys.size()) {
      keys.push_back(key);
      step.bucket_lists.push_back(buckets_of(key.first, key.last, key.layers, key.group));
    }
    step.stage_bucket_list[size_t(s)] = uint16_t(list);
  }
}

// The slower of two groups' times for the same work: a transfer or collective that spans two
// kinds of device runs at the pace of the slower end.
template <typename Time>
double slower(const std::vector<GroupCosts>& groups, int64_t a, int64_t b, Time&& time) {
  const double here = time(*groups[size_t(a)].costs);
  return a == b ? here : std::max(here, time(*groups[size_t(b)].costs));
}

}  // namespace

StepCosts step_costs(const core::Plan& plan, const CostModel& costs) {
  return step_costs(plan, costs, layer_costs(plan, costs));
}

StepCosts step_costs(const core::Plan& plan, const CostModel& costs, const LayerCosts& layers, bool with_segments) {
  return step_costs(plan, std::vector<GroupCosts>{{&costs, &layers}}, with_segments);
}

StepCosts step_costs(const core::Plan& plan, const std::vector<GroupCosts>& groups, bool with_segments) {
  const int64_t p = plan.parallel.pipeline_parallel;
  const int64_t v = plan.virtual_stages();
  const int64_t stages = p * v;
  const int64_t per_node = plan.cluster.devices_per_node;
  const core::RankLayout layout = core::RankLayout::of(plan.parallel);
  const size_t cluster_groups = plan.cluster.mixed() ? plan.cluster.groups.size() : 1;
  if (groups.size() != cluster_groups)
    throw InvalidInput("step costs for a cluster of {} device group(s) were given {} group cost model(s)",
                       cluster_groups, groups.size());
  const std::vector<int64_t> stage_layers = plan.virtual_stage_layers();
  // Each pipeline rank's group; on one kind of device all are on group 0, and a search is spared
  // the placement (and its allocation).
  const std::vector<int64_t> rank_groups = groups.size() == 1 ? std::vector<int64_t>() : plan.pipeline_rank_groups();
  const auto group_of_rank = [&](int64_t r) { return rank_groups.empty() ? int64_t(0) : rank_groups[size_t(r)]; };
  const auto group_of_stage = [&](int64_t s) { return group_of_rank(s % p); };
  StepCosts step;
  step.forward.resize(size_t(stages));
  step.backward.resize(size_t(stages));
  for (int64_t s = 0; s < stages; ++s) {
    const LayerCosts& c = *groups[size_t(group_of_stage(s))].layers;
    const int64_t stage_layer_count = stage_layers[size_t(s)];
    ActionCost& fwd = step.forward[size_t(s)];
    ActionCost& bwd = step.backward[size_t(s)];
    if (s == 0) add(fwd, "embedding", c.embedding_forward, 0, with_segments);
    else add(fwd, "gather pipeline input", c.pipeline_gather, 0, with_segments);
    for (int64_t l = 0; l < stage_layer_count; ++l) add(fwd, "layer", c.layer_forward, 0, with_segments);
    if (s == stages - 1) {
      add(fwd, "output layer + loss", c.output_forward, 0, with_segments);
      add(bwd, "output layer + loss", c.output_backward, 0, with_segments);
    } else {
      add(bwd, "gather pipeline gradient", c.pipeline_gather, 0, with_segments);
    }
    // Recomputed work (compute and its collectives) runs just before each layer's backward.
    for (int64_t l = 0; l < stage_layer_count; ++l)
      add(bwd, "layer", c.layer_backward, c.layer_recompute.compute_s + c.layer_recompute.comm_s, with_segments);
    if (s == 0) add(bwd, "embedding", c.embedding_backward, 0, with_segments);
  }

  // Pipeline transfers: b·s·h activations (or gradients) per microbatch, split over the tensor
  // ranks (Megatron's scatter/gather of pipeline tensors; sequence parallelism shards them anyway).
  const double p2p_bytes = double(plan.parallel.micro_batch_size) * double(plan.model.seq_length) *
                           double(plan.model.hidden_size) * core::bytes_per_element(plan.training.dtype) /
                           double(plan.parallel.tensor_parallel);
  step.send_s.resize(size_t(stages));
  step.send_rendezvous.resize(size_t(stages));
  // One message's time and protocol by (group, whether it crosses nodes), each found once: a
  // collective's time is a table look-up by name, and stages are many.
  struct LinkCost {
    double s = -1;
    bool rendezvous = false;
  };
  std::array<LinkCost, 2> one_group_links;  // one kind of device: no allocation
  std::vector<std::array<LinkCost, 2>> group_links(groups.size() > 1 ? groups.size() : 0);
  const auto link_cost = [&](int64_t group, bool crosses) -> const LinkCost& {
    LinkCost& cost = (group_links.empty() ? one_group_links : group_links[size_t(group)])[crosses];
    if (cost.s < 0) {
      const CostModel& model = *groups[size_t(group)].costs;
      cost.s = model.point_to_point_s(p2p_bytes, crosses);
      const core::LinkSpec* link = model.profile().link(crosses ? "inter-node" : "intra-node");
      cost.rendezvous = link && link->eager_limit_bytes && p2p_bytes > double(*link->eager_limit_bytes);
    }
    return cost;
  };
  for (int64_t s = 0; s < stages && p > 1; ++s) {
    const int64_t here = layout.rank({0, 0, s % p});
    const int64_t next = layout.rank({0, 0, (s + 1) % p});
    const int64_t from_group = group_of_stage(s), to_group = group_of_stage(s + 1);
    // Two groups are two sets of nodes: a transfer between them always crosses nodes, at the pace
    // of the slower end, and a rendezvous at either end holds the sender.
    const bool crosses = from_group != to_group || core::node_of(here, per_node) != core::node_of(next, per_node);
    const LinkCost& from = link_cost(from_group, crosses);
    const LinkCost& to = from_group == to_group ? from : link_cost(to_group, crosses);
    step.send_s[size_t(s)] = std::max(from.s, to.s);
    step.send_rendezvous[size_t(s)] = from.rendezvous || to.rendezvous;
  }
  if (p == 1) {
    // No transfers, but the protocol flag as the link within a node would have it.
    const core::LinkSpec* link = groups.front().costs->profile().link("intra-node");
    step.send_rendezvous[0] = link && link->eager_limit_bytes && p2p_bytes > double(*link->eager_limit_bytes);
  }

  // Gradient reduction and optimizer step of each pipeline rank's parameters. Gradients are
  // reduced in fp32 (Megatron's main grads); with ZeRO-1 they are reduce-scattered and the
  // updated 16-bit parameters all-gathered after the step.
  const double dp = double(plan.parallel.data_parallel);
  const double element = core::bytes_per_element(plan.training.dtype);
  const bool distributed = plan.parallel.distributed_optimizer && plan.parallel.data_parallel > 1;
  step.grad_sync_s.resize(size_t(p));
  step.optimizer_s.resize(size_t(p));
  step.optimizer_comm_s.resize(size_t(p));
  step.grad_norm_s.resize(size_t(p));
  const int64_t world = plan.cluster.world_size();
  const GroupPlacement everyone = progression_placement(0, 1, world, per_node);
  step.step_statistics_s = 0;
  if (world > 1)
    for (const GroupCosts& g : groups)
      step.step_statistics_s =
          std::max(step.step_statistics_s, g.costs->collective_s(Collective::all_reduce, 2.0 * sizeof(double), everyone));
  for (int64_t r = 0; r < p; ++r) {
    const CostModel& costs = *groups[size_t(group_of_rank(r))].costs;
    int64_t rank_layers = 0;
    for (int64_t s = r; s < stages; s += p) rank_layers += stage_layers[size_t(s)];
    const int64_t parameters = core::parameters_per_device_on_stage(plan, r, rank_layers);
    // Rank (0, 0, r)'s data group: dp ranks t apart (Megatron order), the same shape for all.
    const int64_t first_rank = layout.rank({0, 0, r});
    const GroupPlacement data_group =
        progression_placement(first_rank, plan.parallel.tensor_parallel, plan.parallel.data_parallel, per_node);
    const double grad_bytes = double(parameters) * 4.0;
    // With overlap-grad-reduce the reduction runs as buckets during the backward (below).
    double sync = plan.parallel.overlap_grad_reduce
                      ? 0.0
                      : costs.collective_s(distributed ? Collective::reduce_scatter : Collective::all_reduce,
                                           grad_bytes, data_group);
    if (plan.model.tied_embeddings() && p > 1 && (r == 0 || r == p - 1)) {
      // The first and last stages' ranks with the same tensor and data coordinates.
      const int64_t first_stage_rank = layout.rank({0, 0, 0}), last_stage_rank = layout.rank({0, 0, p - 1});
      const double embedding_bytes = double(plan.padded_vocab_size()) * double(plan.model.hidden_size) /
                                     double(plan.parallel.tensor_parallel) * 4.0;
      const GroupPlacement pair = progression_placement(first_stage_rank, last_stage_rank - first_stage_rank, 2, per_node);
      sync += slower(groups, group_of_rank(0), group_of_rank(p - 1),
                     [&](const CostModel& m) { return m.collective_s(Collective::all_reduce, embedding_bytes, pair); });
    }
    step.grad_sync_s[size_t(r)] = sync;
    // The gradient norm and AdamW over the local shard.
    namespace kb = core::kernel_bytes;
    const double local = double(parameters) / (distributed ? dp : 1.0);
    // With overlap-param-gather the gather runs as buckets beside the next forward (below).
    const double gather = distributed && !plan.parallel.overlap_param_gather
                              ? costs.collective_s(Collective::all_gather, double(parameters) * element, data_group)
                              : 0.0;
    step.optimizer_comm_s[size_t(r)] = gather;
    step.grad_norm_s[size_t(r)] = costs.elementwise_s(kb::kGradNorm, kb::grad_norm(local));
    step.optimizer_s[size_t(r)] = step.grad_norm_s[size_t(r)] + costs.elementwise_s(kb::kAdamw, kb::adamw(local)) + gather;
  }
  if (plan.parallel.overlap_grad_reduce)
    add_buckets(plan, groups, stage_layers, rank_groups.empty() ? std::vector<int64_t>(size_t(p), 0) : rank_groups, step);
  return step;
}

}  // namespace loom::sim
