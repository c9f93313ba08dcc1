// cuBLASLt is column-major; a row-major C[m, n] is a column-major Cᵀ[n, m], so
// C = op(A)·op(B) runs as Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's A is our b and its B is our a, each
// with the same transpose flag, and every stored row-major matrix is read as its column-major
// transpose (rows and columns swapped, the row stride as the leading dimension).

#include "executor/kernels/cuda/gemm.hpp"

#include "core/error.hpp"

#include <fmt/format.h>

#include <string>
#include <utility>

namespace loom::exec::cuda {
namespace {

// cuBLASLt's recommendation for Hopper; enough for every algorithm it picks on Ampere too.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

template <typename Opaque>
using LtObject = std::unique_ptr<Opaque, cublasStatus_t (*)(Opaque*)>;

cudaDataType data_type(ElementType type) {
  return type == ElementType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
}

cublasOperation_t operation(bool transpose) {
  return transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
}

// The largest power of two (at most 256) dividing the operand's address and, when batched, its
// batch stride in bytes: the alignment every batch's matrix has.
uint32_t alignment_of(const void* data, int64_t batch_stride, ElementType type, int64_t batch) {
  uintptr_t bits = reinterpret_cast<uintptr_t>(data) | uintptr_t(256);
  if (batch > 1) bits |= uintptr_t(batch_stride) * element_size(type);
  return uint32_t(bits & (~bits + 1));
}

}  // namespace

struct Gemm::Plan {
  LtObject<cublasLtMatmulDescOpaque_t> operation{nullptr, cublasLtMatmulDescDestroy};
  LtObject<cublasLtMatrixLayoutOpaque_t> lt_a{nullptr, cublasLtMatrixLayoutDestroy};  // our b
  LtObject<cublasLtMatrixLayoutOpaque_t> lt_b{nullptr, cublasLtMatrixLayoutDestroy};  // our a
  LtObject<cublasLtMatrixLayoutOpaque_t> lt_c{nullptr, cublasLtMatrixLayoutDestroy};  // c, also d
  cublasLtMatmulAlgo_t algo{};
};

namespace {

// A failed cuBLASLt call, named with the caller and the problem.
class Checker {
 public:
  Checker(const char* caller, const GemmProblem& p) : caller_(caller), p_(p) {}
  void operator()(cublasStatus_t status, const char* call) const {
    if (status == CUBLAS_STATUS_SUCCESS) return;
    throw Error("{}: cuBLASLt {} failed for {}: {} ({})", caller_, call, problem(),
                cublasLtGetStatusString(status), cublasLtGetStatusName(status));
  }
  std::string problem() const {
    return fmt::format(
        "op(a) [{}, {}]{} · op(b) [{}, {}]{} → c [{}, {}] ({} inputs, {} output, batch {})", p_.m,
        p_.k, p_.transpose_a ? " (a transposed)" : "", p_.k, p_.n,
        p_.transpose_b ? " (b transposed)" : "", p_.m, p_.n, to_string(p_.inputs),
        to_string(p_.output), p_.batch);
  }

 private:
  const char* caller_;
  const GemmProblem& p_;
};

LtObject<cublasLtMatrixLayoutOpaque_t> make_layout(const Checker& check, ElementType type,
                                                   int64_t rows, int64_t cols, int64_t leading,
                                                   int64_t batch, int64_t batch_stride) {
  cublasLtMatrixLayout_t raw = nullptr;
  check(cublasLtMatrixLayoutCreate(&raw, data_type(type), uint64_t(rows), uint64_t(cols), leading),
        "cublasLtMatrixLayoutCreate");
  LtObject<cublasLtMatrixLayoutOpaque_t> layout(raw, cublasLtMatrixLayoutDestroy);
  if (batch > 1) {
    const int32_t count = int32_t(batch);
    check(cublasLtMatrixLayoutSetAttribute(raw, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                           sizeof count),
          "cublasLtMatrixLayoutSetAttribute (batch count)");
    check(cublasLtMatrixLayoutSetAttribute(raw, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                           &batch_stride, sizeof batch_stride),
          "cublasLtMatrixLayoutSetAttribute (batch stride)");
  }
  return layout;
}

}  // namespace

Gemm::Gemm(cudaStream_t stream)
    : stream_(stream), handle_(nullptr, cublasLtDestroy), workspace_(kWorkspaceBytes) {
  cublasLtHandle_t raw = nullptr;
  const cublasStatus_t status = cublasLtCreate(&raw);
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw Error("cuBLASLt cublasLtCreate failed: {} ({})", cublasLtGetStatusString(status),
                cublasLtGetStatusName(status));
  }
  handle_.reset(raw);
}

Gemm::~Gemm() = default;

void Gemm::run(const GemmProblem& p, const char* caller) {
  const Key key{p.inputs,
                p.output,
                p.transpose_a,
                p.transpose_b,
                p.m,
                p.n,
                p.k,
                p.batch,
                p.a.row_stride,
                p.a.batch_stride,
                p.b.row_stride,
                p.b.batch_stride,
                p.c_row_stride,
                p.c_batch_stride,
                alignment_of(p.a.data, p.a.batch_stride, p.inputs, p.batch),
                alignment_of(p.b.data, p.b.batch_stride, p.inputs, p.batch),
                alignment_of(p.c, p.c_batch_stride, p.output, p.batch)};
  const Plan& plan = plan_for(key, p, caller);
  Checker(caller, p)(
      cublasLtMatmul(handle_.get(), plan.operation.get(), &p.alpha, p.b.data, plan.lt_a.get(),
                     p.a.data, plan.lt_b.get(), &p.beta, p.c, plan.lt_c.get(), p.c, plan.lt_c.get(),
                     &plan.algo, workspace_.data(), workspace_.bytes(), stream_),
      "cublasLtMatmul");
}

// The descriptors, and cuBLASLt's first choice of algorithm, for one key: made once per shape
// (a training step has a few dozen), then reused.
const Gemm::Plan& Gemm::plan_for(const Key& key, const GemmProblem& problem, const char* caller) {
  if (auto found = plans_.find(key); found != plans_.end()) return *found->second;
  const Checker check(caller, problem);
  auto plan = std::make_unique<Plan>();
  cublasLtMatmulDesc_t operation = nullptr;
  check(cublasLtMatmulDescCreate(&operation, CUBLAS_COMPUTE_32F, CUDA_R_32F),
        "cublasLtMatmulDescCreate");
  plan->operation.reset(operation);
  const cublasOperation_t lt_transpose_a = cuda::operation(key.transpose_b);
  const cublasOperation_t lt_transpose_b = cuda::operation(key.transpose_a);
  check(cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSA, &lt_transpose_a,
                                       sizeof lt_transpose_a),
        "cublasLtMatmulDescSetAttribute (transa)");
  check(cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSB, &lt_transpose_b,
                                       sizeof lt_transpose_b),
        "cublasLtMatmulDescSetAttribute (transb)");

  // cuBLASLt's A is our b: stored [k, n] (or [n, k] transposed), read column-major as [n, k].
  plan->lt_a =
      make_layout(check, key.inputs, key.transpose_b ? key.k : key.n,
                  key.transpose_b ? key.n : key.k, key.b_row_stride, key.batch, key.b_batch_stride);
  plan->lt_b =
      make_layout(check, key.inputs, key.transpose_a ? key.m : key.k,
                  key.transpose_a ? key.k : key.m, key.a_row_stride, key.batch, key.a_batch_stride);
  plan->lt_c =
      make_layout(check, key.output, key.n, key.m, key.c_row_stride, key.batch, key.c_batch_stride);

  cublasLtMatmulPreference_t raw_preference = nullptr;
  check(cublasLtMatmulPreferenceCreate(&raw_preference), "cublasLtMatmulPreferenceCreate");
  LtObject<cublasLtMatmulPreferenceOpaque_t> preference(raw_preference,
                                                        cublasLtMatmulPreferenceDestroy);
  const uint64_t workspace_bytes = workspace_.bytes();
  check(
      cublasLtMatmulPreferenceSetAttribute(raw_preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                           &workspace_bytes, sizeof workspace_bytes),
      "cublasLtMatmulPreferenceSetAttribute (workspace)");
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.b_alignment},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.a_alignment},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.c_alignment},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.c_alignment}};
  for (const auto& [attribute, bytes] : alignments) {
    check(cublasLtMatmulPreferenceSetAttribute(raw_preference, attribute, &bytes, sizeof bytes),
          "cublasLtMatmulPreferenceSetAttribute (alignment)");
  }

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  check(cublasLtMatmulAlgoGetHeuristic(handle_.get(), operation, plan->lt_a.get(), plan->lt_b.get(),
                                       plan->lt_c.get(), plan->lt_c.get(), raw_preference, 1,
                                       &result, &found),
        "cublasLtMatmulAlgoGetHeuristic");
  if (found == 0) throw Error("cuBLASLt has no algorithm for {}", check.problem());
  plan->algo = result.algo;
  return *plans_.emplace(key, std::move(plan)).first->second;
}

}  // namespace loom::exec::cuda
