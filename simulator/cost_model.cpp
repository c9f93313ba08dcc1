#include "simulator/cost_model.hpp"

#include "core/error.hpp"
#include "core/kernel_bytes.hpp"

#include <algorithm>
#include <cmath>

namespace loom::sim {

double bus_factor(Collective collective, int64_t ranks) {
  const double n = double(ranks);
  switch (collective) {
    case Collective::all_reduce: return 2.0 * (n - 1.0) / n;
    case Collective::all_gather:
    case Collective::reduce_scatter: return (n - 1.0) / n;
    case Collective::broadcast:
    case Collective::send_recv: return 1.0;
  }
  return 1.0;
}

namespace {

std::string collective_key(std::string_view collective, std::string_view level) {
  return std::string(collective) + "@" + std::string(level);
}

std::string_view level_of(const GroupPlacement& group) { return group.crosses_nodes() ? "inter-node" : "intra-node"; }

double peak_of(const core::Profile& profile, core::DType dtype) {
  auto it = profile.device.peak_flops_per_s.find(dtype);
  if (it == profile.device.peak_flops_per_s.end())
    throw InvalidInput("profile '{}': device.peak_flops_per_s has no {} entry, but the plan trains in {} "
                       "(training.dtype); expected a positive number there",
                       profile.name, core::to_string(dtype), core::to_string(dtype));
  return it->second;
}

}  // namespace

core::DType simulated_dtype(core::DType requested, const core::Profile& profile) {
  return profile.device.compute_dtype.value_or(requested);
}

core::Plan as_simulated(core::Plan plan, const core::Profile& profile) {
  plan.training.dtype = simulated_dtype(plan.training.dtype, profile);
  return plan;
}

CostModel::CostModel(const core::Profile& profile, core::DType dtype, int64_t ranks_per_node)
    : profile_(profile), dtype_(dtype),
      table_scales_(profile.calibration ? profile.calibration->table_time_scales : core::TableTimeScales{}),
      peak_flops_per_s_(peak_of(profile, dtype)) {
  // Ranks beyond the cores time-share them: every rank's kernels take proportionally longer.
  const core::DeviceSpec& device = profile.device;
  if (device.host_cores > 0)
    compute_share_ = std::max(1.0, double(ranks_per_node * device.threads_per_rank) / double(device.host_cores));
  // The tables hold times under the load they were measured with; a plan with more (or fewer)
  // ranks computing on a node runs each kernel slower (faster) by the profile's measured load.
  if (device.measured_load && device.host_cores > 0)
    compute_share_ *= device.measured_load->contention(ranks_per_node) /
                      device.measured_load->contention(device.measured_load->tables_busy_ranks_per_node);
  for (const core::GemmSample& s : profile.tables.gemm)
    if (s.dtype == dtype) gemm_tables_[s.layout].add(s.m, s.n, s.k, s.time_s);
  for (const core::AttentionSample& s : profile.tables.attention)
    if (s.dtype == dtype)
      // Profiles bound batch and seq to 2^24 each (core/profile.hpp): the product fits.
      attention_tables_[{s.backend, s.backward}].add(s.batch * s.seq, s.seq, s.head_dim, s.time_s);
  for (const core::KernelSample& s : profile.tables.kernels) kernel_curves_[s.kernel].add(double(s.bytes), s.time_s);
  for (const core::CollectiveSample& s : profile.tables.collectives)
    collective_times_[collective_key(s.collective, s.level)][s.ranks].add(double(s.bytes), s.time_s);
}

double CostModel::gemm_s(int64_t m, int64_t n, int64_t k, int64_t batch, core::GemmLayout layout) const {
  return compute_share_ * unshared_gemm_s(m, n, k, batch, layout);
}

double CostModel::unshared_gemm_s(int64_t m, int64_t n, int64_t k, int64_t batch, core::GemmLayout layout) const {
  const core::EfficiencyModel& e = profile_.efficiency;
  // A measured time already includes the launch. A layout measured on its own is preferred;
  // else the forward layout's table stands for it.
  for (core::GemmLayout tabled : {layout, core::GemmLayout::nn})
    if (auto it = gemm_tables_.find(tabled); it != gemm_tables_.end())
      return table_scales_.gemm * it->second.time_s(double(m) * double(batch), double(n), double(k));
  const double flops = 2.0 * double(m) * double(n) * double(k) * double(batch);
  const double efficiency = e.gemm_max_fraction * flops / (flops + e.gemm_half_saturation_flops);
  // In doubles: b·s·h elements pass int64 at the maxima of core/limits.hpp.
  const double dm = double(m), dn = double(n), dk = double(k);
  const double bytes = double(batch) * (dm * dk + dk * dn + dm * dn) * core::bytes_per_element(dtype_);
  const double compute = flops / (peak_flops_per_s_ * efficiency);
  const double memory = bytes / (profile_.device.memory_bandwidth_bytes_per_s * e.memory_bandwidth_fraction);
  return std::max(compute, memory) + e.kernel_launch_s;
}

double CostModel::attention_s(int64_t batch, int64_t seq, int64_t head_dim, bool backward,
                              core::AttentionBackend backend) const {
  if (auto it = attention_tables_.find({backend, backward}); it != attention_tables_.end() && !it->second.empty())
    return compute_share_ * table_scales_.attention *
           it->second.time_s(double(batch) * double(seq), double(seq), double(head_dim));
  const core::EfficiencyModel& e = profile_.efficiency;
  if (backend == core::AttentionBackend::flash) {
    // One fused kernel: its executed FLOPs at the profile's flash efficiency, or its HBM traffic
    // if that takes longer (short sequences).
    const Op op = attention_core("attention", backend, batch, seq, head_dim, backward, core::bytes_per_element(dtype_));
    const double fraction = (backward ? e.flash_backward_fraction : e.flash_forward_fraction).value_or(e.gemm_max_fraction);
    const double compute = op.flops / (peak_flops_per_s_ * fraction);
    const double memory = op.attention_bytes / (profile_.device.memory_bandwidth_bytes_per_s * e.memory_bandwidth_fraction);
    return compute_share_ * (std::max(compute, memory) + e.kernel_launch_s);
  }
  // No measured attention: Q·Kᵀ, the masked softmax with dropout and ·V as separate kernels
  // (the backward: both products' data gradients and the softmax's).
  namespace kb = core::kernel_bytes;
  const double scores = double(batch) * double(seq) * double(seq);
  const double element_bytes = core::bytes_per_element(dtype_);
  if (!backward)
    return gemm_s(seq, seq, head_dim, batch) + elementwise_s(kb::kSoftmax, kb::softmax_forward(scores, element_bytes)) +
           gemm_s(seq, head_dim, seq, batch);
  return gemm_s(seq, seq, head_dim, batch) + gemm_s(seq, head_dim, seq, batch) +
         elementwise_s(kb::kSoftmaxBackward, kb::softmax_backward(scores, element_bytes)) +
         gemm_s(seq, head_dim, seq, batch) + gemm_s(head_dim, seq, seq, batch);
}

double CostModel::elementwise_s(std::string_view kernel, double bytes) const {
  return compute_share_ * unshared_elementwise_s(kernel, bytes);
}

double CostModel::unshared_elementwise_s(std::string_view kernel, double bytes) const {
  const core::EfficiencyModel& e = profile_.efficiency;
  if (auto it = kernel_curves_.find(kernel); it != kernel_curves_.end()) return table_scales_.kernels * it->second(bytes);
  if (auto it = kernel_curves_.find(core::kernel_bytes::forward_name(kernel)); it != kernel_curves_.end())
    return table_scales_.kernels * it->second(bytes);
  if (core::kernel_bytes::charged_only_when_measured(kernel)) return 0.0;
  return bytes / (profile_.device.memory_bandwidth_bytes_per_s * e.memory_bandwidth_fraction) + e.kernel_launch_s;
}

double CostModel::bus_bandwidth(const GroupPlacement& group) const {
  const core::LinkSpec* intra = profile_.link("intra-node");
  const double intra_bw = intra->bandwidth_bytes_per_s * intra->bus_bandwidth_fraction;
  if (!group.crosses_nodes()) return intra_bw;
  const core::LinkSpec* inter = profile_.link("inter-node");
  if (!inter)
    throw InvalidInput("profile '{}' has no inter-node link, but a group of {} ranks spans nodes", profile_.name,
                       group.ranks);
  // Each device has its own network port (DGX: one NIC per GPU). A hierarchical ring over a
  // group with k members per node drives k ports per node, so the group's bus bandwidth grows
  // with k until the node's internal links become the limit.
  const double inter_bw = inter->bandwidth_bytes_per_s * inter->bus_bandwidth_fraction * double(group.ranks_per_node);
  return std::min(intra_bw, inter_bw);
}

double CostModel::latency_s(const GroupPlacement& group) const {
  const core::LinkSpec* link = profile_.link(level_of(group));
  return link ? link->latency_s : profile_.link("intra-node")->latency_s;
}

double CostModel::tabled_collective_s(Collective collective, double bytes, const GroupPlacement& group,
                                      bool& found) const {
  found = false;
  auto table = collective_times_.find(collective_key(to_string(collective), level_of(group)));
  if (table == collective_times_.end() || table->second.empty()) return 0;
  // The measured rank count nearest to the group's (in ratio). Time is interpolated over bytes
  // at that count (latency-bound below the smallest size, bandwidth-bound above the largest),
  // then carried to the group's rank count at equal bus bandwidth, the quantity nccl-tests
  // designed to be comparable across rank counts.
  const auto nearest = std::min_element(table->second.begin(), table->second.end(), [&](const auto& a, const auto& b) {
    return std::abs(std::log(double(a.first) / double(group.ranks))) <
           std::abs(std::log(double(b.first) / double(group.ranks)));
  });
  const double measured_ranks = double(std::max<int64_t>(nearest->first, 2));
  const double time = table_scales_.collectives(level_of(group)) * nearest->second(bytes);
  found = true;
  return time * bus_factor(collective, group.ranks) / bus_factor(collective, int64_t(measured_ranks));
}

double CostModel::collective_s(Collective collective, double bytes, const GroupPlacement& group) const {
  if (group.ranks <= 1 || bytes <= 0) return 0;
  bool found = false;
  const double tabled = tabled_collective_s(collective, bytes, group, found);
  if (found) return tabled;
  // Ring algorithms: 2(n-1) steps for all-reduce, n-1 for all-gather and reduce-scatter.
  const double n = double(group.ranks);
  const double steps = collective == Collective::all_reduce ? 2.0 * (n - 1.0)
                       : collective == Collective::send_recv ? 1.0
                       : collective == Collective::broadcast ? std::ceil(std::log2(n))
                                                             : n - 1.0;
  return steps * latency_s(group) + bytes * bus_factor(collective, group.ranks) / bus_bandwidth(group);
}

double CostModel::point_to_point_s(double bytes, bool crosses_nodes) const {
  const GroupPlacement pair{2, crosses_nodes ? 1 : 2};
  return collective_s(Collective::send_recv, bytes, pair);
}

double CostModel::op_s(const Op& op, const GroupPlacement& tensor_group) const {
  switch (op.kind) {
    case OpKind::gemm: return gemm_s(op.m, op.n, op.k, op.batch, op.layout);
    case OpKind::attention: return attention_s(op.batch, op.m, op.k, op.backward, op.backend);
    case OpKind::elementwise: return elementwise_s(op.kernel, op.bytes);
    case OpKind::collective: return collective_s(op.collective, op.bytes, tensor_group);
  }
  return 0;
}

}  // namespace loom::sim
