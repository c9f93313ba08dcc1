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

class CostModel {
 public:
  CostModel(const core::Profile& profile, core::DType dtype);

  double gemm_s(int64_t m, int64_t n, int64_t k, int64_t batch = 1) const;
  double elementwise_s(std::string_view kernel, double bytes) const;
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

  core::Profile profile_;
  core::DType dtype_;
  double peak_flops_per_s_;
  GemmTable gemm_table_;
  std::map<std::string, LogLogCurve, std::less<>> kernel_curves_;
  // Time by (collective, level) at each measured rank count, as a function of bytes.
  std::map<std::string, std::map<int64_t, LogLogCurve>> collective_times_;
};

// nccl-tests' bus-bandwidth factor: busbw = algbw × factor.
double bus_factor(Collective collective, int64_t ranks);

}  // namespace loom::sim
