#pragma once
// Eigen views of raw row-major buffers, shared by the CPU kernel sources: Maps copy nothing, and
// Eigen's array expressions vectorise (exp, tanh, reductions) whatever the compiler's -O level.

// With -march=native, GCC 12 reports false -Wmaybe-uninitialized warnings inside its AVX-512
// intrinsics as Eigen's GEMM kernels get inlined (GCC bug 105593, fixed in GCC 13), and Eigen
// 3.4's AVX headers have unused variables; neither is in Loom's code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wunused-variable"
#include <Eigen/Core>
#pragma GCC diagnostic pop

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
