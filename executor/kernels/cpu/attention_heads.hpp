#pragma once
// Where one attention head's operands sit, for the unfused and the flash kernels alike: its q, k
// and v ([seq, head_dim] each) in qkv [b, s, 3·heads·head_dim], rows 3·heads·head_dim apart, and
// its slice of out (or dout) [b, s, heads·head_dim], rows heads·head_dim apart.

#include "executor/kernels/cpu/cpu_math.hpp"
#include "executor/kernels/cpu/eigen_maps.hpp"

#include <cstdint>

namespace loom::exec::cpu {

struct HeadOffsets {
  int64_t q = 0, k = 0, v = 0, out = 0;
  int64_t pair = 0;  // batch · heads + head: the head's index among all, for its own saved rows
};

inline HeadOffsets head_offsets(const AttentionShape& shape, int64_t batch, int64_t head) {
  const int64_t width = shape.heads * shape.head_dim;
  HeadOffsets offsets;
  offsets.q = batch * shape.seq * 3 * width + head * shape.head_dim;
  offsets.k = offsets.q + width;
  offsets.v = offsets.q + 2 * width;
  offsets.out = batch * shape.seq * width + head * shape.head_dim;
  offsets.pair = batch * shape.heads + head;
  return offsets;
}

// A head's [seq, head_dim] operand whose rows lie `stride` elements apart.
template <typename T>
ConstStridedMatrixMap<T> head_view(const T* data, const AttentionShape& shape, int64_t stride) {
  return ConstStridedMatrixMap<T>(data, shape.seq, shape.head_dim, Eigen::OuterStride<>(stride));
}
template <typename T>
StridedMatrixMap<T> head_view(T* data, const AttentionShape& shape, int64_t stride) {
  return StridedMatrixMap<T>(data, shape.seq, shape.head_dim, Eigen::OuterStride<>(stride));
}

}  // namespace loom::exec::cpu
