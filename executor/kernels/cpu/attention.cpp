// Causal self-attention on the CPU: per (batch, head), GEMMs on strided views of qkv write the
// scores straight into the saved probabilities, a row-wise masked softmax turns them into
// probabilities in place, and one more GEMM forms the head's slice of the output.
//
// Causality zeroes the upper triangle of every [seq, seq] product, so the GEMMs run over panels
// of kPanel query rows (or key columns) that stop at the diagonal: 62 % of the FLOPs of full
// products at seq 256, each still a plain GEMM. Measured at seq 256, head 64, batch 8, 4 heads:
// forward 1.4× and backward 1.7× faster than full products; Eigen's triangular products were
// 1.6× slower than full ones.

#include "executor/kernels/cpu/attention_heads.hpp"
#include "executor/kernels/cpu/cpu_math.hpp"
#include "executor/kernels/cpu/eigen_maps.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace loom::exec::cpu {
namespace {

constexpr int64_t kPanel = 64;

// Calls f(begin, size) for consecutive panels [begin, begin + size) covering [0, seq).
template <typename F>
void for_each_panel(int64_t seq, F&& f) {
  for (int64_t begin = 0; begin < seq; begin += kPanel) f(begin, std::min(kPanel, seq - begin));
}

// Row i keeps columns j ≤ i: softmax over them (shifted by their max so exp cannot overflow),
// zeros above the diagonal, so the saved probabilities are exactly the causal ones.
template <typename T>
void causal_softmax_in_place(MatrixMap<T>& scores) {
  const int64_t seq = scores.rows();
  for (int64_t i = 0; i < seq; ++i) {
    auto visible = scores.row(i).head(i + 1).array();
    visible = (visible - visible.maxCoeff()).exp();
    visible /= visible.sum();
    scores.row(i).tail(seq - i - 1).setZero();
  }
}

}  // namespace

template <typename T>
void attention_forward(const T* qkv, T* out, T* probabilities, AttentionShape shape) {
  const int64_t width = shape.heads * shape.head_dim;
  const T scale = T(1) / std::sqrt(T(shape.head_dim));
  for (int64_t b = 0; b < shape.batch; ++b) {
    for (int64_t h = 0; h < shape.heads; ++h) {
      const HeadOffsets at = head_offsets(shape, b, h);
      auto q = head_view(qkv + at.q, shape, 3 * width);
      auto k = head_view(qkv + at.k, shape, 3 * width);
      auto v = head_view(qkv + at.v, shape, 3 * width);
      MatrixMap<T> p(probabilities + at.pair * shape.seq * shape.seq, shape.seq, shape.seq);
      auto o = head_view(out + at.out, shape, width);
      // Queries [begin, begin + size) see keys [0, begin + size).
      for_each_panel(shape.seq, [&](int64_t begin, int64_t size) {
        p.block(begin, 0, size, begin + size).noalias() =
            scale * q.middleRows(begin, size) * k.topRows(begin + size).transpose();
      });
      causal_softmax_in_place(p);
      for_each_panel(shape.seq, [&](int64_t begin, int64_t size) {
        o.middleRows(begin, size).noalias() =
            p.block(begin, 0, size, begin + size) * v.topRows(begin + size);
      });
    }
  }
}

// With S the scaled scores and P = softmax(S): dV = Pᵀ·dO, dP = dO·Vᵀ,
// dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = scale·dS·K, dK = scale·dSᵀ·Q. Masked entries have P = 0,
// so their dS is 0 and they pass no gradient; dS is zeroed above the diagonal because the
// diagonal panels of the dQ and dK products read it there.
template <typename T>
void attention_backward(const T* dout, const T* qkv, const T* probabilities, T* dqkv,
                        AttentionShape shape) {
  const int64_t width = shape.heads * shape.head_dim;
  const T scale = T(1) / std::sqrt(T(shape.head_dim));
  // The one per-call buffer: dP, then dS in its place, for the head being processed.
  std::vector<T> scratch(size_t(shape.seq * shape.seq));
  MatrixMap<T> ds(scratch.data(), shape.seq, shape.seq);
  for (int64_t b = 0; b < shape.batch; ++b) {
    for (int64_t h = 0; h < shape.heads; ++h) {
      const HeadOffsets at = head_offsets(shape, b, h);
      auto q = head_view(qkv + at.q, shape, 3 * width);
      auto k = head_view(qkv + at.k, shape, 3 * width);
      auto v = head_view(qkv + at.v, shape, 3 * width);
      auto d_out = head_view(dout + at.out, shape, width);
      ConstMatrixMap<T> p(probabilities + at.pair * shape.seq * shape.seq, shape.seq, shape.seq);
      auto dq = head_view(dqkv + at.q, shape, 3 * width);
      auto dk = head_view(dqkv + at.k, shape, 3 * width);
      auto dv = head_view(dqkv + at.v, shape, 3 * width);

      // Keys [begin, begin + size) are seen by queries [begin, seq).
      for_each_panel(shape.seq, [&](int64_t begin, int64_t size) {
        const int64_t seen_by = shape.seq - begin;
        dv.middleRows(begin, size).noalias() =
            p.block(begin, begin, seen_by, size).transpose() * d_out.bottomRows(seen_by);
        ds.block(begin, 0, size, begin + size).noalias() =
            d_out.middleRows(begin, size) * v.topRows(begin + size).transpose();
      });
      for (int64_t i = 0; i < shape.seq; ++i) {
        auto p_row = p.row(i).head(i + 1).array();
        auto ds_row = ds.row(i).head(i + 1).array();
        const T dot = (p_row * ds_row).sum();
        ds_row = scale * p_row * (ds_row - dot);
        ds.row(i).tail(shape.seq - i - 1).setZero();
      }
      for_each_panel(shape.seq, [&](int64_t begin, int64_t size) {
        const int64_t seen_by = shape.seq - begin;
        dq.middleRows(begin, size).noalias() =
            ds.block(begin, 0, size, begin + size) * k.topRows(begin + size);
        dk.middleRows(begin, size).noalias() =
            ds.block(begin, begin, seen_by, size).transpose() * q.bottomRows(seen_by);
      });
    }
  }
}

#define LOOM_INSTANTIATE_ATTENTION(T)                                   \
  template void attention_forward<T>(const T*, T*, T*, AttentionShape); \
  template void attention_backward<T>(const T*, const T*, const T*, T*, AttentionShape);

LOOM_INSTANTIATE_ATTENTION(float)
LOOM_INSTANTIATE_ATTENTION(double)

}  // namespace loom::exec::cpu
