#pragma once
// `loom-exec bench`: single-rank training speed of a GPT next to the GEMM rate measured in the
// same process, so the executor's overhead over its own kernels is visible; on CUDA also the
// model FLOP utilisation (MFU) against a profile's peak.

#include "executor/kernels/backend.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace loom::exec {

struct BenchOptions {
  int threads = 1;
  double seconds = 3.0;  // per measurement
  bool json = false;
  Backend backend = Backend::cpu;
  // bench-gpt-4x256 (4 layers, hidden 256, seq 256, vocab 256, fp32), gpt2-124m or gpt2-350m.
  std::string model = "bench-gpt-4x256";
  std::optional<int64_t> seq;          // default: 256 for bench-gpt-4x256, 1024 for GPT-2
  std::optional<int64_t> micro_batch;  // default: 8
  // "fp32" or "bf16"; default bf16 for GPT-2 on cuda, else fp32 (the CPU computes in fp32 anyway).
  std::string precision;
  // The profile whose peak MFU is measured against; default h100-80gb-dgx on cuda, none on cpu.
  std::optional<std::string> profile;
};

// InvalidInput, one line, when `backend` cannot run here: cuda in a CPU-only build, or no usable
// CUDA device (with the runtime's reason).
void require_usable(Backend backend);

// What can be refused before MPI starts (InvalidInput): an unknown model, seq outside 1…65536,
// a micro-batch below 1, a precision other than fp32/bf16, a backend that cannot run here, a
// profile that does not resolve.
void check_bench_options(const BenchOptions& options);

// On options check_bench_options passed.
int run_benchmark(const BenchOptions& options);

}  // namespace loom::exec
