#include "executor/kernels/backend.hpp"

#include "core/error.hpp"

#if defined(LOOM_HAVE_CUDA)
#include "executor/kernels/cuda/cuda_kernels.hpp"
#endif

namespace loom::exec {

std::string_view to_string(Backend backend) {
  return backend == Backend::cpu ? "cpu" : "cuda";
}

Backend parse_backend(std::string_view text) {
  if (text == "cpu") return Backend::cpu;
  if (text == "cuda") return Backend::cuda;
  throw InvalidInput("--backend '{}' is not a backend: expected cpu or cuda", text);
}

bool cuda_built() {
#if defined(LOOM_HAVE_CUDA)
  return true;
#else
  return false;
#endif
}

bool cuda_device_usable(std::string* reason) {
#if defined(LOOM_HAVE_CUDA)
  std::string why;
  const bool usable = cuda::device_count(&why) > 0;
  if (!usable && reason != nullptr) *reason = why;
  return usable;
#else
  if (reason != nullptr) *reason = "this build of Loom has no CUDA backend (configured without nvcc, cuBLASLt or NCCL)";
  return false;
#endif
}

std::unique_ptr<Kernels> make_kernels(Backend backend, int threads, int device_ordinal) {
  if (backend == Backend::cpu) return make_cpu_kernels(threads);
#if defined(LOOM_HAVE_CUDA)
  std::string why;
  const int devices = cuda::device_count(&why);
  if (devices == 0) throw InvalidInput("--backend cuda: no usable CUDA device: {}", why);
  return cuda::make_cuda_kernels(device_ordinal % devices);
#else
  (void)device_ordinal;
  throw InvalidInput("--backend cuda: this build of Loom has no CUDA backend (configured without nvcc, cuBLASLt or "
                     "NCCL); use --backend cpu");
#endif
}

}  // namespace loom::exec
