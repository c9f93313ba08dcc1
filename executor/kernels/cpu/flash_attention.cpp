// Causal self-attention as one tiled kernel (FlashAttention-2, Dao 2023) on the CPU: the scores
// exist only as kTile × kTile tiles, never as a [seq, seq] matrix. The forward runs an online
// softmax over the key tiles of each query tile (a running row max and row sum rescale the output
// accumulated so far) and saves, besides the output, each row's log-sum-exp; the backward
// recomputes every tile's probabilities as exp(S − lse) and needs only D = rowsum(dO ∘ O) more.
//
// Query and key tiles share one size and one grid, so the only tile that crosses the causal
// diagonal is the one on it, and every row of it sees at least its diagonal key: no row of a
// visited tile is wholly masked, and the running max is finite after the first tile.
//
// Heads are independent: with OpenMP they run in parallel, each on its own tile buffers (Eigen's
// GEMMs do not nest threads inside an OpenMP region), so the numbers do not depend on the thread
// count.

#include "executor/kernels/cpu/attention_heads.hpp"
#include "executor/kernels/cpu/cpu_math.hpp"
#include "executor/kernels/cpu/eigen_maps.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace loom::exec::cpu {
namespace {

constexpr int64_t kTile = 64;

// Calls f over every (batch, head) pair, in parallel where OpenMP is on.
template <typename F>
void for_each_head(const AttentionShape& shape, F&& f) {
  const int64_t pairs = shape.batch * shape.heads;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic) num_threads(Eigen::nbThreads())
#endif
  for (int64_t pair = 0; pair < pairs; ++pair) f(pair / shape.heads, pair % shape.heads);
}

// In the diagonal tile, row r sees columns c ≤ r only.
template <typename Tile>
void fill_above_diagonal(Tile& tile, typename Tile::Scalar value) {
  for (int64_t r = 0; r < tile.rows(); ++r) tile.row(r).tail(tile.cols() - r - 1).setConstant(value);
}

template <typename T>
void forward_head(const T* qkv, T* out, T* log_sum_exp, const AttentionShape& shape, int64_t batch,
                  int64_t head) {
  const int64_t width = shape.heads * shape.head_dim;
  const T scale = T(1) / std::sqrt(T(shape.head_dim));
  const HeadOffsets at = head_offsets(shape, batch, head);
  const auto q = head_view(qkv + at.q, shape, 3 * width);
  const auto k = head_view(qkv + at.k, shape, 3 * width);
  const auto v = head_view(qkv + at.v, shape, 3 * width);
  auto o = head_view(out + at.out, shape, width);

  RowMajorMatrix<T> scores(kTile, kTile);
  Eigen::Array<T, Eigen::Dynamic, 1> row_max(kTile), row_sum(kTile), tile_max(kTile), rescale(kTile);
  for (int64_t query = 0; query < shape.seq; query += kTile) {
    const int64_t rows = std::min(kTile, shape.seq - query);
    auto accumulated = o.middleRows(query, rows);
    accumulated.setZero();
    row_max.head(rows).setConstant(-std::numeric_limits<T>::infinity());
    row_sum.head(rows).setZero();
    // Keys [0, query + rows): the tiles left of the diagonal, then the diagonal one.
    for (int64_t key = 0; key <= query; key += kTile) {
      const int64_t cols = std::min(kTile, shape.seq - key);
      auto s = scores.topLeftCorner(rows, cols);
      s.noalias() = scale * q.middleRows(query, rows) * k.middleRows(key, cols).transpose();
      const bool diagonal = key == query;
      if (diagonal) fill_above_diagonal(s, -std::numeric_limits<T>::infinity());
      tile_max.head(rows) = row_max.head(rows).max(s.rowwise().maxCoeff().array());
      rescale.head(rows) = (row_max.head(rows) - tile_max.head(rows)).exp();
      s = (s.colwise() - tile_max.head(rows).matrix()).array().exp().matrix();
      // exp(−∞) is not exactly 0 in every vectorised exp: masked entries are set, not computed.
      if (diagonal) fill_above_diagonal(s, T(0));
      row_sum.head(rows) = rescale.head(rows) * row_sum.head(rows) + s.rowwise().sum().array();
      accumulated.array().colwise() *= rescale.head(rows);
      accumulated.noalias() += s * v.middleRows(key, cols);
      row_max.head(rows) = tile_max.head(rows);
    }
    accumulated.array().colwise() /= row_sum.head(rows);
    ArrayMap<T>(log_sum_exp + at.pair * shape.seq + query, rows) = row_max.head(rows) + row_sum.head(rows).log();
  }
}

// With P = exp(S − lse) recomputed per tile: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − D) with
// D = rowsum(dO ⊙ O) (= rowsum(P ⊙ dP)), dQ = scale·dS·K, dK = scale·dSᵀ·Q. The outer loop runs
// over key tiles so that dK and dV of a tile are finished in one pass; dQ accumulates.
template <typename T>
void backward_head(const T* dout, const T* qkv, const T* out, const T* log_sum_exp, T* dqkv,
                   const AttentionShape& shape, int64_t batch, int64_t head) {
  const int64_t width = shape.heads * shape.head_dim;
  const T scale = T(1) / std::sqrt(T(shape.head_dim));
  const HeadOffsets at = head_offsets(shape, batch, head);
  const auto q = head_view(qkv + at.q, shape, 3 * width);
  const auto k = head_view(qkv + at.k, shape, 3 * width);
  const auto v = head_view(qkv + at.v, shape, 3 * width);
  const auto o = head_view(out + at.out, shape, width);
  const auto d_out = head_view(dout + at.out, shape, width);
  auto dq = head_view(dqkv + at.q, shape, 3 * width);
  auto dk = head_view(dqkv + at.k, shape, 3 * width);
  auto dv = head_view(dqkv + at.v, shape, 3 * width);
  const ConstArrayMap<T> lse(log_sum_exp + at.pair * shape.seq, shape.seq);

  const Eigen::Array<T, Eigen::Dynamic, 1> d = d_out.cwiseProduct(o).rowwise().sum().array();
  RowMajorMatrix<T> p(kTile, kTile), ds(kTile, kTile);
  dq.setZero();
  for (int64_t key = 0; key < shape.seq; key += kTile) {
    const int64_t cols = std::min(kTile, shape.seq - key);
    auto dk_tile = dk.middleRows(key, cols);
    auto dv_tile = dv.middleRows(key, cols);
    dk_tile.setZero();
    dv_tile.setZero();
    // Queries [key, seq) see this key tile; the first query tile is the diagonal one.
    for (int64_t query = key; query < shape.seq; query += kTile) {
      const int64_t rows = std::min(kTile, shape.seq - query);
      auto p_tile = p.topLeftCorner(rows, cols);
      auto ds_tile = ds.topLeftCorner(rows, cols);
      p_tile.noalias() = scale * q.middleRows(query, rows) * k.middleRows(key, cols).transpose();
      p_tile = (p_tile.colwise() - lse.segment(query, rows).matrix()).array().exp().matrix();
      if (query == key) fill_above_diagonal(p_tile, T(0));
      dv_tile.noalias() += p_tile.transpose() * d_out.middleRows(query, rows);
      ds_tile.noalias() = d_out.middleRows(query, rows) * v.middleRows(key, cols).transpose();
      ds_tile = scale * (p_tile.array() * (ds_tile.colwise() - d.segment(query, rows).matrix()).array()).matrix();
      dq.middleRows(query, rows).noalias() += ds_tile * k.middleRows(key, cols);
      dk_tile.noalias() += ds_tile.transpose() * q.middleRows(query, rows);
    }
  }
}

}  // namespace

template <typename T>
void flash_attention_forward(const T* qkv, T* out, T* log_sum_exp, AttentionShape shape) {
  for_each_head(shape, [&](int64_t batch, int64_t head) {
    forward_head(qkv, out, log_sum_exp, shape, batch, head);
  });
}

template <typename T>
void flash_attention_backward(const T* dout, const T* qkv, const T* out, const T* log_sum_exp,
                              T* dqkv, AttentionShape shape) {
  for_each_head(shape, [&](int64_t batch, int64_t head) {
    backward_head(dout, qkv, out, log_sum_exp, dqkv, shape, batch, head);
  });
}

#define LOOM_INSTANTIATE_FLASH_ATTENTION(T)                                       \
  template void flash_attention_forward<T>(const T*, T*, T*, AttentionShape); \
  template void flash_attention_backward<T>(const T*, const T*, const T*, const T*, T*, AttentionShape);

LOOM_INSTANTIATE_FLASH_ATTENTION(float)
LOOM_INSTANTIATE_FLASH_ATTENTION(double)

}  // namespace loom::exec::cpu
