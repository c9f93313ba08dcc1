#include "simulator/step_costs.hpp"

#include "core/kernel_bytes.hpp"
#include "core/model_arithmetic.hpp"
#include "core/rank_layout.hpp"

#include <algorithm>
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

OpsTime time_ops(const std::vector<Op>& ops, const CostModel& costs, const GroupPlacement& tensor_group) {
  OpsTime t;
  for (const Op& op : ops) (op.kind == OpKind::collective ? t.comm_s : t.compute_s) += costs.op_s(op, tensor_group);
  return t;
}

void add(ActionCost& cost, std::string_view name, const OpsTime& t, double recompute_s, bool with_segments) {
  cost.compute_s += t.compute_s;
  cost.recompute_s += recompute_s;
  cost.tp_comm_s += t.comm_s;
  if (!with_segments) return;
  if (recompute_s > 0) cost.segments.push_back({Stream::compute, "recompute", recompute_s});
  cost.segments.push_back({Stream::compute, name, t.compute_s});
  if (t.comm_s > 0) cost.segments.push_back({Stream::tp_comm, name, t.comm_s});
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
  return {time_ops(layer.forward, costs, tensor_group),     time_ops(layer.backward, costs, tensor_group),
          time_ops(layer.recompute, costs, tensor_group),   time_ops(embedding.forward, costs, tensor_group),
          time_ops(embedding.backward, costs, tensor_group), time_ops(output.forward, costs, tensor_group),
          time_ops(output.backward, costs, tensor_group)};
}

StepCosts step_costs(const core::Plan& plan, const CostModel& costs) {
  return step_costs(plan, costs, layer_costs(plan, costs));
}

StepCosts step_costs(const core::Plan& plan, const CostModel& costs, const LayerCosts& layers, bool with_segments) {
  const int64_t p = plan.parallel.pipeline_parallel;
  const int64_t v = plan.virtual_stages();
  const int64_t stages = p * v;
  const int64_t layers_per_chunk = plan.model.num_layers / stages;
  const int64_t per_node = plan.cluster.devices_per_node;
  const core::RankLayout layout = core::RankLayout::of(plan.parallel);
  const LayerCosts& c = layers;
  StepCosts step;
  step.forward.resize(size_t(stages));
  step.backward.resize(size_t(stages));
  for (int64_t s = 0; s < stages; ++s) {
    ActionCost& fwd = step.forward[size_t(s)];
    ActionCost& bwd = step.backward[size_t(s)];
    if (s == 0) add(fwd, "embedding", c.embedding_forward, 0, with_segments);
    for (int64_t l = 0; l < layers_per_chunk; ++l) add(fwd, "layer", c.layer_forward, 0, with_segments);
    if (s == stages - 1) {
      add(fwd, "output layer + loss", c.output_forward, 0, with_segments);
      add(bwd, "output layer + loss", c.output_backward, 0, with_segments);
    }
    // Recomputed work (compute and its collectives) runs just before each layer's backward.
    for (int64_t l = 0; l < layers_per_chunk; ++l)
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
  for (int64_t s = 0; s < stages; ++s) {
    const int64_t here = layout.rank({0, 0, s % p});
    const int64_t next = layout.rank({0, 0, (s + 1) % p});
    const bool crosses = core::node_of(here, per_node) != core::node_of(next, per_node);
    step.send_s[size_t(s)] = p == 1 ? 0.0 : costs.point_to_point_s(p2p_bytes, crosses);
    const core::LinkSpec* link = costs.profile().link(crosses ? "inter-node" : "intra-node");
    step.send_rendezvous[size_t(s)] = link && link->eager_limit_bytes && p2p_bytes > double(*link->eager_limit_bytes);
  }

  // Gradient reduction and optimizer step of each pipeline rank's parameters. Gradients are
  // reduced in fp32 (Megatron's main grads); with ZeRO-1 they are reduce-scattered and the
  // updated 16-bit parameters all-gathered after the step.
  const std::vector<int64_t> parameters = core::parameters_per_device_by_stage(plan);  // one small vector per plan
  const double dp = double(plan.parallel.data_parallel);
  const double element = core::bytes_per_element(plan.training.dtype);
  const bool distributed = plan.parallel.distributed_optimizer && plan.parallel.data_parallel > 1;
  step.grad_sync_s.resize(size_t(p));
  step.optimizer_s.resize(size_t(p));
  step.optimizer_comm_s.resize(size_t(p));
  step.grad_norm_s.resize(size_t(p));
  const int64_t world = plan.cluster.world_size();
  step.step_statistics_s =
      world > 1 ? costs.collective_s(Collective::all_reduce, 2.0 * sizeof(double), progression_placement(0, 1, world, per_node))
                : 0.0;
  for (int64_t r = 0; r < p; ++r) {
    // Rank (0, 0, r)'s data group: dp ranks t apart (Megatron order), the same shape for all.
    const int64_t first_rank = layout.rank({0, 0, r});
    const GroupPlacement data_group =
        progression_placement(first_rank, plan.parallel.tensor_parallel, plan.parallel.data_parallel, per_node);
    const double grad_bytes = double(parameters[size_t(r)]) * 4.0;
    double sync = costs.collective_s(distributed ? Collective::reduce_scatter : Collective::all_reduce, grad_bytes, data_group);
    if (plan.model.tied_embeddings() && p > 1 && (r == 0 || r == p - 1)) {
      // The first and last stages' ranks with the same tensor and data coordinates.
      const int64_t first_stage_rank = layout.rank({0, 0, 0}), last_stage_rank = layout.rank({0, 0, p - 1});
      const double embedding_bytes = double(plan.padded_vocab_size()) * double(plan.model.hidden_size) /
                                     double(plan.parallel.tensor_parallel) * 4.0;
      sync += costs.collective_s(Collective::all_reduce, embedding_bytes,
                                 progression_placement(first_stage_rank, last_stage_rank - first_stage_rank, 2, per_node));
    }
    step.grad_sync_s[size_t(r)] = sync;
    // The gradient norm and AdamW over the local shard.
    namespace kb = core::kernel_bytes;
    const double local = double(parameters[size_t(r)]) / (distributed ? dp : 1.0);
    const double gather = distributed ? costs.collective_s(Collective::all_gather, double(parameters[size_t(r)]) * element, data_group) : 0.0;
    step.optimizer_comm_s[size_t(r)] = gather;
    step.grad_norm_s[size_t(r)] = costs.elementwise_s(kb::kGradNorm, kb::grad_norm(local));
    step.optimizer_s[size_t(r)] = step.grad_norm_s[size_t(r)] + costs.elementwise_s(kb::kAdamw, kb::adamw(local)) + gather;
  }
  return step;
}

}  // namespace loom::sim
