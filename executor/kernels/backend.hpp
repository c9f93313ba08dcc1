#pragma once
// Which kernels and communicators a run uses: `--backend cpu` (Eigen + MPI; the reference, fp32)
// or `--backend cuda` (CUDA + cuBLASLt + NCCL; fp32 or bf16 mixed precision). One place builds
// either, so commands never hard-code a backend.

#include "executor/kernels/kernels.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace loom::exec {

enum class Backend : uint8_t { cpu, cuda };
std::string_view to_string(Backend backend);
// "cpu" or "cuda"; anything else is InvalidInput naming what was given and what is accepted.
Backend parse_backend(std::string_view text);

// Whether this build of Loom has the CUDA backend (configured with CUDA, cuBLASLt and NCCL found).
bool cuda_built();
// Whether a CUDA device can be used now; when not, `reason` says why (no driver, no device,
// a CPU-only build). Tests labelled gpu skip with this reason.
bool cuda_device_usable(std::string* reason);

// The kernels of a backend. cpu: `threads` Eigen threads. cuda: the device `device_ordinal`
// (a rank's local rank modulo the devices present), with Loom's caching allocator installed for
// Device::cuda. Throws InvalidInput for cuda in a CPU-only build or without a usable device.
std::unique_ptr<Kernels> make_kernels(Backend backend, int threads, int device_ordinal);

}  // namespace loom::exec
