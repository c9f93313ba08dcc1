#pragma once
// The element types on MPI, shared by the blocking (mpi_communicator.cpp) and non-blocking
// (mpi_nonblocking.cpp) collectives: the datatype that carries each type, the reduction op, the
// division of an average, and the fp32 copies that bf16 is reduced in.

#include "core/error.hpp"
#include "executor/bfloat16.hpp"
#include "executor/comm/mpi_communicator.hpp"

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace loom::exec::mpi {

// The MPI datatype that carries `type` bit for bit. MPI has no bfloat16: bf16 travels as
// MPI_UINT16_T, right for moving data (gather, broadcast, send, receive) but not for reducing it,
// so reductions of bf16 go through an fp32 copy (widen_bf16 / narrow_to_bf16).
inline MPI_Datatype carrier(ElementType type) {
  switch (type) {
    case ElementType::f32:
      return MPI_FLOAT;
    case ElementType::f64:
      return MPI_DOUBLE;
    case ElementType::bf16:
      return MPI_UINT16_T;
    case ElementType::i32:
      return MPI_INT32_T;
  }
  throw Error("MPI: unknown element type {}", int(type));
}

// average is a sum divided afterwards (divide_by_ranks).
inline MPI_Op reduction(ReduceOp op) {
  return op == ReduceOp::max ? MPI_MAX : MPI_SUM;
}

// The address of element `index` of a buffer of `type`.
inline void* element_at(void* base, size_t index, ElementType type) {
  return static_cast<std::byte*>(base) + index * element_size(type);
}
inline const void* element_at(const void* base, size_t index, ElementType type) {
  return static_cast<const std::byte*>(base) + index * element_size(type);
}

// data[i] /= ranks. Divided rather than multiplied by a rounded 1/ranks: exact whenever the sum
// is a multiple of ranks. Averages reach here as f32 (bf16 in its fp32 copy) or f64 only: the
// front refuses the average of i32.
inline void divide_by_ranks(void* data, size_t count, ElementType type, int ranks) {
  auto divide = [&](auto* values) {
    using Value = std::remove_pointer_t<decltype(values)>;
    const Value n = static_cast<Value>(ranks);
    for (size_t i = 0; i < count; ++i) values[i] /= n;
  };
  switch (type) {
    case ElementType::f32:
      return divide(static_cast<float*>(data));
    case ElementType::f64:
      return divide(static_cast<double*>(data));
    case ElementType::bf16:
    case ElementType::i32:
      break;
  }
  throw Error("MPI: no average of {} elements here", to_string(type));
}

// The fp32 copy a bf16 reduction runs on (exact: every bf16 value is an fp32 value).
inline std::vector<float> widen_bf16(const void* data, size_t count) {
  const auto* bits = static_cast<const uint16_t*>(data);
  std::vector<float> wide(count);
  for (size_t i = 0; i < count; ++i) wide[i] = bf16_bits_to_float(bits[i]);
  return wide;
}

// The reduced fp32 values back into bf16, rounded once, to nearest even.
inline void narrow_to_bf16(const float* wide, size_t count, void* data) {
  auto* bits = static_cast<uint16_t*>(data);
  for (size_t i = 0; i < count; ++i) bits[i] = float_to_bf16_bits(wide[i]);
}

}  // namespace loom::exec::mpi
