#pragma once
// Eigen views of raw row-major buffers, shared by the CPU kernel sources: Maps copy nothing, and
// Eigen's array expressions vectorise (exp, tanh, reductions) whatever the compiler's -O level.

#include <Eigen/Core>

#include <cstdint>

namespace loom::exec::cpu {

template <typename T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatrixMap = Eigen::Map<RowMajorMatrix<T>>;
template <typename T>
using ConstMatrixMap = Eigen::Map<const RowMajorMatrix<T>>;
// A matrix whose rows lie `stride` elements apart: one head's slice of qkv or of out.
template <typename T>
using StridedMatrixMap = Eigen::Map<RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using ConstStridedMatrixMap =
    Eigen::Map<const RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename T>
using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using ConstArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

}  // namespace loom::exec::cpu
