#pragma once
// `loom bench fidelity`: predicted against measured step time and peak memory on this machine.

#include <cstdint>
#include <string>

namespace loom::cli {

struct FidelityOptions {
  std::string model = "loom-tiny";
  std::string profile;   // a measured CPU profile; empty: profile this machine first (quick)
  std::string work_dir;  // plans, the store and the children's logs; empty: a new temporary folder
  std::string format = "table";
  int64_t steps = 20;
  int64_t micro_batch_size = 2;
  int64_t global_batch_size = 16;
  int64_t max_ranks = 4;
  int profile_ranks = 4;
  // Threads per rank of the profile measured here (and so of every run, which inherits them);
  // 0: the launch rule's default for the largest plans. Not for a given profile: it has its own.
  int threads = 0;
  // Runs of each plan, round-robin over the plans (plan A, plan B, …, then A again), each after a
  // probe of the machine: the median is reported with the spread of the repeats.
  int repeats = 3;
  // Fit the measured profile to half of the plans' runs (sim::calibrate) and report the error on
  // the other half before and after.
  bool calibrate = false;
};

void run_fidelity_benchmark(const FidelityOptions& options);

}  // namespace loom::cli
