#pragma once
// Time of each operation on one device, from a profile: measured tables first (interpolated in
// log space), the profile's documented efficiency assumptions over its datasheet peaks where no
// table covers the operation.

#include "core/profile.hpp"
#include "simulator/interpolation.hpp"
#include "simulator/ops.hpp"

#include <map>
#include <string>

namespace loom::sim {

// Where the members of a communication group sit.
struct GroupPlacement {
  int64_t ranks = 1;
  int64_t ranks_per_node = 1;  // members sharing one node (all of them when the group is in one node)
  bool crosses_nodes() const { return ranks_per_node < ranks; }
};

// The type a device computes a plan in: the plan's, unless the device computes in one type only
// (the CPU executor: fp32).
core::DType simulated_dtype(core::DType requested, const core::Profile& profile);
// The plan as the device will run it (its dtype replaced by simulated_dtype).
core::Plan as_simulated(core::Plan plan, const core::Profile& profile);

class CostModel {
 public:
  // `ranks_per_node`: the plan's devices per node, which on a CPU profile share host_cores.
  CostModel(const core::Profile& profile, core::DType dtype, int64_t ranks_per_node = 1);

  double gemm_s(int64_t m, int64_t n, int64_t k, int64_t batch = 1,
                core::GemmLayout layout = core::GemmLayout::nn) const;
  // Causal attention of `batch` heads of seq × head_dim, forward or backward, by the backend's
  // measured table when the profile has one, else (unfused) as its separate kernels or (flash)
  // as one kernel at the profile's flash efficiency.
  double attention_s(int64_t batch, int64_t seq, int64_t head_dim, bool backward,
                     core::AttentionBackend backend = core::AttentionBackend::unfused) const;
  // A memory-bound kernel of core/kernel_bytes.hpp charged `bytes`.
  double elementwise_s(std::string_view kernel, double bytes) const;
  // How many times slower compute runs than the profile's tables say because ranks share cores
  // (ranks × threads beyond host_cores time-share them) and, with a measured load, because the
  // plan has more or fewer ranks computing on a node than the tables were measured with (1 on
  // GPUs).
  double compute_share() const { return compute_share_; }
  // nccl-tests' byte counting: the whole array for all-gather and reduce-scatter.
  double collective_s(Collective collective, double bytes, const GroupPlacement& group) const;
  // One message between two devices, within a node or across nodes.
  double point_to_point_s(double bytes, bool crosses_nodes) const;
  // An op of a layer; collectives run over `tensor_group`.
  double op_s(const Op& op, const GroupPlacement& tensor_group) const;

  const core::Profile& profile() const { return profile_; }
  double peak_flops_per_s() const { return peak_flops_per_s_; }

 private:
  // Bus bandwidth a collective reaches over `group` without a measured table.
  double bus_bandwidth(const GroupPlacement& group) const;
  double latency_s(const GroupPlacement& group) const;
  double tabled_collective_s(Collective collective, double bytes, const GroupPlacement& group, bool& found) const;

  double unshared_gemm_s(int64_t m, int64_t n, int64_t k, int64_t batch, core::GemmLayout layout) const;
  double unshared_elementwise_s(std::string_view kernel, double bytes) const;

  core::Profile profile_;
  core::DType dtype_;
  // A calibrated profile's multipliers on measured-table times (all 1 for any other profile).
  core::TableTimeScales table_scales_;
  double peak_flops_per_s_;
  double compute_share_ = 1.0;
  std::map<core::GemmLayout, GemmTable> gemm_tables_;
  // Attention time as a GEMM-like table over (batch·seq, seq, head_dim), by backend and pass.
  std::map<std::pair<core::AttentionBackend, bool>, GemmTable> attention_tables_;
  std::map<std::string, LogLogCurve, std::less<>> kernel_curves_;
  // Time by (collective, level) at each measured rank count, as a function of bytes.
  std::map<std::string, std::map<int64_t, LogLogCurve>> collective_times_;
};

// nccl-tests' bus-bandwidth factor: busbw = algbw × factor.
double bus_factor(Collective collective, int64_t ranks);

}  // namespace loom::sim
