#pragma once
// What a profile run has measured: the profile's tables, and beside each row the spread of its
// repeats, (max − min) / median, which core::Profile does not keep but the written file does.

#include "core/profile.hpp"

#include <vector>

namespace loom::exec::profile {

struct Measured {
  core::ProfileTables tables;
  std::vector<double> gemm_spread, attention_spread, kernel_spread, collective_spread;

  void add(const core::GemmSample& s, double spread) {
    tables.gemm.push_back(s);
    gemm_spread.push_back(spread);
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
