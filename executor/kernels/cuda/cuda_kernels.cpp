// The CUDA Kernels: the checking front (kernels.hpp) over this folder's kernels, all on one
// compute stream, and the process's CUDA state (device, stream, pool) behind the entry points of
// cuda_kernels.hpp.

#include "executor/kernels/cuda/cuda_kernels.hpp"

#include "core/error.hpp"
#include "executor/kernels/cuda/attention.hpp"
#include "executor/kernels/cuda/cuda_check.hpp"
#include "executor/kernels/cuda/device_pool.hpp"
#include "executor/kernels/cuda/elementwise.hpp"
#include "executor/kernels/cuda/flash_attention.hpp"
#include "executor/kernels/cuda/gemm.hpp"
#include "executor/kernels/cuda/layernorm.hpp"
#include "executor/kernels/cuda/llama_ops.hpp"
#include "executor/kernels/cuda/optimizer.hpp"
#include "executor/kernels/cuda/vocabulary.hpp"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <string>

namespace loom::exec::cuda {
namespace {

// Made by the first make_cuda_kernels and kept for the process: tensors (through the pool) and
// the NCCL communicator use the device and the stream beyond the life of any Kernels object.
struct Runtime {
  std::mutex mutex;
  int device = -1;
  DeviceContext context;
};
Runtime& runtime() {
  static Runtime instance;
  return instance;
}
std::atomic<cudaStream_t> the_compute_stream{nullptr};

void check_flash_head_dim(const char* kernel, const AttentionShape& shape) {
  if (shape.head_dim > kMaxHeadDim) {
    throw Error(
        "{}: head_dim {} is larger than the CUDA flash attention kernels take ({}); use "
        "attention-backend unfused",
        kernel, shape.head_dim, kMaxHeadDim);
  }
}

std::string why_no_device(cudaError_t result) {
  if (result == cudaErrorInsufficientDriver || result == cudaErrorStubLibrary) {
    return fmt::format("no CUDA driver, or one older than this build's CUDA runtime ({})",
                       cudaGetErrorString(result));
  }
  if (result == cudaErrorNoDevice) return "no CUDA device";
  return fmt::format("cudaGetDeviceCount failed: {} ({})", cudaGetErrorString(result),
                     cudaGetErrorName(result));
}

class CudaKernels final : public Kernels {
 public:
  explicit CudaKernels(const DeviceContext& device) : device_(device), gemm_(device.stream) {}
  // Matmuls still queued use the cuBLASLt handle that is destroyed with this object. (A failure
  // of queued work is dropped here: destructors do not throw.)
  ~CudaKernels() override { (void)cudaStreamSynchronize(device_.stream); }

  Device device() const override { return Device::cuda; }
  bool computes_in(ElementType type) const override {
    return type == ElementType::f32 || type == ElementType::bf16;
  }
  void synchronize() override {
    check_runtime(cudaStreamSynchronize(device_.stream), "cudaStreamSynchronize");
  }

 protected:
  void run_matmul(const Tensor& a, bool transpose_a, const Tensor& b, bool transpose_b, Tensor& c,
                  int64_t m, int64_t n, int64_t k, float alpha, float beta) override {
    if (m == 0 || n == 0) return;
    if (k == 0) {  // an empty sum: c = beta·c
      if (beta == 0.0f) {
        c.fill_zero();
      } else {
        cuda::scale(c, beta, device_);
      }
      return;
    }
    GemmProblem problem;
    problem.inputs = a.type();
    problem.output = c.type();
    problem.transpose_a = transpose_a;
    problem.transpose_b = transpose_b;
    problem.m = m;
    problem.n = n;
    problem.k = k;
    problem.a = {a.data<char>(), transpose_a ? m : k, 0};
    problem.b = {b.data<char>(), transpose_b ? k : n, 0};
    problem.c = c.data<char>();
    problem.c_row_stride = n;
    problem.alpha = alpha;
    problem.beta = beta;
    gemm_.run(problem, "matmul");
  }
  void run_add_bias(Tensor& x, const Tensor& bias, int64_t rows, int64_t cols) override {
    cuda::add_bias(x, bias, rows, cols, device_);
  }
  void run_bias_backward(const Tensor& dy, Tensor& dbias, int64_t rows, int64_t cols) override {
    cuda::bias_backward(dy, dbias, rows, cols, device_);
  }
  void run_add(const Tensor& a, const Tensor& b, Tensor& out) override {
    cuda::add(a, b, out, device_);
  }
  void run_layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                             Tensor& y, Tensor& mean, Tensor& rstd, int64_t rows,
                             int64_t cols) override {
    cuda::layernorm_forward(x, gamma, beta, eps, y, mean, rstd, rows, cols, device_);
  }
  void run_layernorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                              const Tensor& mean, const Tensor& rstd, Tensor& dx, Tensor& dgamma,
                              Tensor& dbeta, int64_t rows, int64_t cols) override {
    cuda::layernorm_backward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta, rows, cols, device_);
  }
  void run_gelu_forward(const Tensor& x, Tensor& y) override { cuda::gelu_forward(x, y, device_); }
  void run_gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) override {
    cuda::gelu_backward(dy, x, dx, device_);
  }
  void run_rmsnorm_forward(const Tensor& x, const Tensor& gamma, float eps, Tensor& y, Tensor& rstd,
                           int64_t rows, int64_t cols) override {
    cuda::rmsnorm_forward(x, gamma, eps, y, rstd, rows, cols, device_);
  }
  void run_rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                            const Tensor& rstd, Tensor& dx, Tensor& dgamma, int64_t rows,
                            int64_t cols) override {
    cuda::rmsnorm_backward(dy, x, gamma, rstd, dx, dgamma, rows, cols, device_);
  }
  void run_swiglu_forward(const Tensor& gate_up, Tensor& y, int64_t rows, int64_t f) override {
    cuda::swiglu_forward(gate_up, y, rows, f, device_);
  }
  void run_swiglu_backward(const Tensor& dy, const Tensor& gate_up, Tensor& dgate_up, int64_t rows,
                           int64_t f) override {
    cuda::swiglu_backward(dy, gate_up, dgate_up, rows, f, device_);
  }
  void run_rotary(Tensor& qkv, const GroupedShape& shape, float base, bool inverse) override {
    cuda::rotary(qkv, shape, base, inverse, device_);
  }
  void run_expand_query_groups(const Tensor& grouped, Tensor& full,
                               const GroupedShape& shape) override {
    cuda::expand_query_groups(grouped, full, shape, device_);
  }
  void run_reduce_query_groups(const Tensor& full, Tensor& grouped,
                               const GroupedShape& shape) override {
    cuda::reduce_query_groups(full, grouped, shape, device_);
  }
  void run_attention_forward(const Tensor& qkv, Tensor& out, Tensor& probabilities,
                             const AttentionShape& shape) override {
    cuda::attention_forward(qkv, out, probabilities, shape, gemm_, device_);
  }
  void run_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& probabilities,
                              Tensor& dqkv, const AttentionShape& shape) override {
    cuda::attention_backward(dout, qkv, probabilities, dqkv, shape, gemm_, device_);
  }
  void run_flash_attention_forward(const Tensor& qkv, Tensor& out, Tensor& log_sum_exp,
                                   const AttentionShape& shape) override {
    check_flash_head_dim("flash_attention_forward", shape);
    cuda::flash_attention_forward(qkv, out, log_sum_exp, shape, device_);
  }
  void run_flash_attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& out,
                                    const Tensor& log_sum_exp, Tensor& dqkv,
                                    const AttentionShape& shape) override {
    check_flash_head_dim("flash_attention_backward", shape);
    cuda::flash_attention_backward(dout, qkv, out, log_sum_exp, dqkv, shape, device_);
  }
  void run_embedding_forward(const Tensor& tokens, const Tensor& table, int64_t vocab_start,
                             Tensor& out, int64_t count, int64_t shard_rows,
                             int64_t cols) override {
    cuda::embedding_forward(tokens, table, vocab_start, out, count, shard_rows, cols, device_);
  }
  void run_embedding_backward(const Tensor& dout, const Tensor& tokens, int64_t vocab_start,
                              Tensor& dtable, int64_t count, int64_t shard_rows,
                              int64_t cols) override {
    cuda::embedding_backward(dout, tokens, vocab_start, dtable, count, shard_rows, cols, device_);
  }
  void run_cross_entropy_partials(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                  Tensor& row_max, Tensor& sum_exp, Tensor& target_logit,
                                  int64_t rows, int64_t cols) override {
    cuda::cross_entropy_partials(logits, targets, vocab_start, row_max, sum_exp, target_logit, rows,
                                 cols, device_);
  }
  void run_cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                  const Tensor& global_max, const Tensor& global_sum_exp,
                                  float scale, Tensor& dlogits, int64_t rows,
                                  int64_t cols) override {
    cuda::cross_entropy_backward(logits, targets, vocab_start, global_max, global_sum_exp, scale,
                                 dlogits, rows, cols, device_);
  }
  void run_adamw(Tensor& master, const Tensor& gradient, Tensor& m, Tensor& v,
                 const AdamWSettings& settings, Tensor* working_copy) override {
    cuda::adamw(master, gradient, m, v, settings, working_copy, device_);
  }
  double run_sum_of_squares(const Tensor& x, const Tensor* weights) override {
    return cuda::sum_of_squares(x, weights, device_);
  }
  void run_scale(Tensor& x, float factor) override { cuda::scale(x, factor, device_); }
  // Either side may be host memory (the front allows it): cudaMemcpyDefault finds out which, and
  // the host must not touch its side until the copy is done.
  void run_copy(const Tensor& from, Tensor& to) override {
    if (from.bytes() == 0) return;
    check_runtime(cudaMemcpyAsync(to.data<char>(), from.data<char>(), from.bytes(),
                                  cudaMemcpyDefault, device_.stream),
                  "cudaMemcpyAsync (copy)", {{"bytes", int64_t(from.bytes())}});
    if (from.device() == Device::cpu || to.device() == Device::cpu) synchronize();
  }
  void run_cast(const Tensor& from, Tensor& to) override { cuda::cast(from, to, device_); }

 private:
  DeviceContext device_;
  Gemm gemm_;
};

}  // namespace

int device_count(std::string* reason) {
  int count = 0;
  const cudaError_t result = cudaGetDeviceCount(&count);
  if (result != cudaSuccess) {
    (void)cudaGetLastError();
    if (reason != nullptr) *reason = why_no_device(result);
    return 0;
  }
  if (count == 0 && reason != nullptr) *reason = "no CUDA device";
  return count;
}

std::unique_ptr<Kernels> make_cuda_kernels(int device_ordinal) {
  Runtime& state = runtime();
  std::lock_guard lock(state.mutex);
  if (state.device >= 0 && state.device != device_ordinal) {
    throw Error(
        "the CUDA backend of this process runs on device {}, not {}: its pool and stream belong to "
        "that one",
        state.device, device_ordinal);
  }
  check_runtime(cudaSetDevice(device_ordinal), "cudaSetDevice", {{"device", device_ordinal}});
  if (state.device < 0) {
    cudaStream_t stream = nullptr;
    // Non-blocking, so that work on the legacy default stream does not serialise with it.
    check_runtime(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                  "cudaStreamCreateWithFlags");
    int multiprocessors = 0;
    check_runtime(
        cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device_ordinal),
        "cudaDeviceGetAttribute (multiprocessors)", {{"device", device_ordinal}});
    install_device_pool(stream);
    state.context = DeviceContext{stream, multiprocessors};
    state.device = device_ordinal;
    the_compute_stream.store(stream);
  }
  return std::make_unique<CudaKernels>(state.context);
}

void* compute_stream() {
  return the_compute_stream.load();
}

}  // namespace loom::exec::cuda
