#pragma once
// `loom-exec bench`: single-rank training speed of a small GPT next to the GEMM rate measured in
// the same process, so the executor's overhead over its own kernels is visible.

#include <string>

namespace loom::exec {

struct BenchOptions {
  int threads = 1;
  double seconds = 3.0;  // per measurement
  bool json = false;
};

int run_benchmark(const BenchOptions& options);

}  // namespace loom::exec
