#pragma once
// Integer arithmetic that says when it cannot keep a count instead of wrapping around: an
// overflowing product of sizes would otherwise turn an impossible plan into one that "fits".

#include "core/limits.hpp"

#include <cmath>
#include <cstdint>
#include <optional>

namespace loom::core {

inline std::optional<int64_t> checked_multiply(int64_t a, int64_t b) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}

inline std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return std::nullopt;
  return sum;
}

// A byte count computed in floating point, rounded to an integer: nullopt when it is not finite,
// negative, or above limits::kMaxCountedBytes.
inline std::optional<int64_t> countable_bytes(double bytes) {
  if (!(std::isfinite(bytes) && bytes >= 0 && bytes <= double(limits::kMaxCountedBytes))) return std::nullopt;
  return std::llround(bytes);
}

}  // namespace loom::core
