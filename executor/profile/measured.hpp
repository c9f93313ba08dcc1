#pragma once
// What a profile run has measured: the profile's tables, and beside each row the spread of its
// repeats, (max − min) / median, which core::Profile does not keep but the written file does.

#include "core/profile.hpp"

#include <map>
#include <vector>

namespace loom::exec::profile {

struct Measured {
  core::ProfileTables tables;
  std::vector<double> gemm_spread, attention_spread, kernel_spread, collective_spread;
  // The best GEMM rate measured in each dtype: the device's peaks.
  std::map<core::DType, double> gemm_peak_flops_per_s;

  void add(const core::GemmSample& s, double spread) {
    tables.gemm.push_back(s);
    gemm_spread.push_back(spread);
    add_gemm_rate(s.dtype, 2.0 * double(s.m) * double(s.n) * double(s.k) / s.time_s);
  }
  void add_gemm_rate(core::DType dtype, double flops_per_s) {
    double& best = gemm_peak_flops_per_s[dtype];
    if (flops_per_s > best) best = flops_per_s;
  }
  void add(const core::AttentionSample& s, double spread) {
    tables.attention.push_back(s);
    attention_spread.push_back(spread);
  }
  void add(const core::KernelSample& s, double spread) {
    tables.kernels.push_back(s);
    kernel_spread.push_back(spread);
  }
  void add(const core::CollectiveSample& s, double spread) {
    tables.collectives.push_back(s);
    collective_spread.push_back(spread);
  }
};

}  // namespace loom::exec::profile
