// Per sequence b, the heads form one strided batch: head h's q, k and v are [seq, head_dim]
// matrices with rows 3·width apart, h·head_dim columns into qkv's rows, so consecutive heads lie
// head_dim elements apart; out's head slices likewise with rows width apart. The GEMMs compute
// full [seq, seq] products; the softmax kernels zero what lies above the diagonal, so masked
// entries contribute nothing. In bf16 the scores are rounded to bf16 before the softmax, as in
// Megatron's unfused path; the flash kernels keep them in fp32.

#include "executor/kernels/cuda/attention.hpp"

#include "executor/kernels/cuda/cuda_check.hpp"
#include "executor/kernels/cuda/device_support.cuh"
#include "executor/kernels/element_math.hpp"

#include <cmath>

namespace loom::exec::cuda {
namespace {

struct MergeSoftmax {
  __device__ SoftmaxPartial operator()(SoftmaxPartial a, SoftmaxPartial b) const {
    return softmax_merge(a, b);
  }
};

// Row `row` of [pairs·seq, seq] scores is query i = row % seq: softmax over columns j ≤ i in
// place, zeros above the diagonal.
template <typename T>
__global__ void causal_softmax_kernel(T* scores, int64_t seq) {
  const int64_t row = blockIdx.x;
  const int64_t i = row % seq;
  T* x = scores + row * seq;
  SoftmaxPartial partial;
  for (int64_t j = threadIdx.x; j <= i; j += blockDim.x)
    partial = softmax_add(partial, to_float(x[j]));
  partial = block_reduce(partial, MergeSoftmax{});
  for (int64_t j = threadIdx.x; j < seq; j += blockDim.x) {
    x[j] = from_float<T>(j <= i ? expf(to_float(x[j]) - partial.max) / partial.sum : 0.0f);
  }
}

// dS = scale·P ⊙ (dP − rowsum(P ⊙ dP)) over columns j ≤ i, in place over dP; zeros above.
template <typename T>
__global__ void causal_softmax_backward_kernel(const T* probabilities, T* gradient, int64_t seq,
                                               float scale) {
  const int64_t row = blockIdx.x;
  const int64_t i = row % seq;
  const T* p = probabilities + row * seq;
  T* d = gradient + row * seq;
  float dot = 0;
  for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) dot += to_float(p[j]) * to_float(d[j]);
  dot = block_reduce(dot, Sum{});
  for (int64_t j = threadIdx.x; j < seq; j += blockDim.x) {
    d[j] = from_float<T>(j <= i ? scale * to_float(p[j]) * (to_float(d[j]) - dot) : 0.0f);
  }
}

// The address `elements` into a tensor's storage.
const char* at(const Tensor& t, int64_t elements) {
  return t.data<char>() + elements * int64_t(element_size(t.type()));
}

// One sequence's heads as a strided batch of [seq, head_dim] matrices in qkv (part 0, 1, 2 for
// q, k, v), in out/dout, or as [seq, seq] matrices in probabilities or the scratch.
struct Heads {
  const AttentionShape& shape;
  int64_t width() const { return shape.heads * shape.head_dim; }
  MatrixOperand qkv(const Tensor& t, int64_t b, int part) const {
    return {at(t, b * shape.seq * 3 * width() + part * width()), 3 * width(), shape.head_dim};
  }
  MatrixOperand rows(const Tensor& t, int64_t b) const {
    return {at(t, b * shape.seq * width()), width(), shape.head_dim};
  }
  MatrixOperand square(const Tensor& t, int64_t first_pair) const {
    return {at(t, first_pair * shape.seq * shape.seq), shape.seq, shape.seq * shape.seq};
  }
};

// c = alpha·op(a)·op(b) over the heads of one sequence; c of the inputs' type. Heads describes
// outputs with the same (const) operand as inputs; c's tensor is always a writable one.
void batched_gemm(Gemm& gemm, const char* caller, const AttentionShape& shape, ElementType type,
                  MatrixOperand a, bool transpose_a, MatrixOperand b, bool transpose_b,
                  MatrixOperand c, int64_t m, int64_t n, int64_t k, float alpha) {
  GemmProblem problem;
  problem.inputs = problem.output = type;
  problem.transpose_a = transpose_a;
  problem.transpose_b = transpose_b;
  problem.m = m;
  problem.n = n;
  problem.k = k;
  problem.batch = shape.heads;
  problem.a = a;
  problem.b = b;
  problem.c = const_cast<void*>(c.data);
  problem.c_row_stride = c.row_stride;
  problem.c_batch_stride = c.batch_stride;
  problem.alpha = alpha;
  gemm.run(problem, caller);
}

int softmax_threads(int64_t seq) {
  return threads_for(seq, 512);
}

}  // namespace

void attention_forward(const Tensor& qkv, Tensor& out, Tensor& probabilities,
                       const AttentionShape& shape, Gemm& gemm, const DeviceContext& device) {
  const int64_t s = shape.seq, d = shape.head_dim;
  if (shape.batch * shape.heads * s == 0 || d == 0) return;
  const Heads heads{shape};
  const float scale = 1.0f / std::sqrt(float(d));
  for (int64_t b = 0; b < shape.batch; ++b) {
    batched_gemm(gemm, "attention_forward (scores)", shape, qkv.type(), heads.qkv(qkv, b, 0), false,
                 heads.qkv(qkv, b, 1), true, heads.square(probabilities, b * shape.heads), s, s, d,
                 scale);
  }
  dispatch_compute_type(qkv.type(), [&]<typename T>(T*) {
    causal_softmax_kernel<<<unsigned(shape.batch * shape.heads * s), softmax_threads(s), 0,
                            device.stream>>>(probabilities.data<T>(), s);
  });
  check_launch("attention_forward (softmax)",
               {{"batch", shape.batch}, {"heads", shape.heads}, {"seq", s}});
  for (int64_t b = 0; b < shape.batch; ++b) {
    batched_gemm(gemm, "attention_forward (output)", shape, qkv.type(),
                 heads.square(probabilities, b * shape.heads), false, heads.qkv(qkv, b, 2), false,
                 heads.rows(out, b), s, d, s, 1.0f);
  }
}

// dV = Pᵀ·dO, dP = dO·Vᵀ, dS = scale·P ⊙ (dP − rowsum(P ⊙ dP)), dQ = dS·K, dK = dSᵀ·Q, one
// sequence at a time through a [heads, seq, seq] scratch that holds dP and then dS.
void attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& probabilities,
                        Tensor& dqkv, const AttentionShape& shape, Gemm& gemm,
                        const DeviceContext& device) {
  const int64_t s = shape.seq, d = shape.head_dim;
  if (shape.batch * shape.heads * s == 0 || d == 0) return;
  const Heads heads{shape};
  const float scale = 1.0f / std::sqrt(float(d));
  const ElementType type = qkv.type();
  Tensor scratch({shape.heads, s, s}, type, Device::cuda);
  for (int64_t b = 0; b < shape.batch; ++b) {
    const MatrixOperand p = heads.square(probabilities, b * shape.heads);
    const MatrixOperand ds = heads.square(scratch, 0);
    batched_gemm(gemm, "attention_backward (dv)", shape, type, p, true, heads.rows(dout, b), false,
                 heads.qkv(dqkv, b, 2), s, d, s, 1.0f);
    batched_gemm(gemm, "attention_backward (dp)", shape, type, heads.rows(dout, b), false,
                 heads.qkv(qkv, b, 2), true, ds, s, s, d, 1.0f);
    dispatch_compute_type(type, [&]<typename T>(T*) {
      causal_softmax_backward_kernel<<<unsigned(shape.heads * s), softmax_threads(s), 0,
                                       device.stream>>>(static_cast<const T*>(p.data),
                                                        scratch.data<T>(), s, scale);
    });
    check_launch("attention_backward (softmax)",
                 {{"batch", shape.batch}, {"heads", shape.heads}, {"seq", s}});
    batched_gemm(gemm, "attention_backward (dq)", shape, type, ds, false, heads.qkv(qkv, b, 1),
                 false, heads.qkv(dqkv, b, 0), s, d, s, 1.0f);
    batched_gemm(gemm, "attention_backward (dk)", shape, type, ds, true, heads.qkv(qkv, b, 0),
                 false, heads.qkv(dqkv, b, 1), s, d, s, 1.0f);
  }
}

}  // namespace loom::exec::cuda
