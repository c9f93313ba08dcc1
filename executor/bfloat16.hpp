#pragma once
// bfloat16 as Loom stores it: the upper 16 bits of an IEEE fp32 (sign, 8-bit exponent, 7-bit
// mantissa), rounded to nearest even — the format of Megatron's bf16 parameters and activations.
// Host and device code share these functions (CUDA compiles them with __host__ __device__), so
// the conversions the GPU does are the ones the host tests check.

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LOOM_HOST_DEVICE __host__ __device__
#else
#define LOOM_HOST_DEVICE
#endif

namespace loom::exec {

LOOM_HOST_DEVICE inline float bf16_bits_to_float(uint16_t bits) {
  uint32_t word = uint32_t(bits) << 16;
  float value;
  memcpy(&value, &word, sizeof value);
  return value;
}

// Round to nearest, ties to even; NaN stays a (quiet) NaN, infinities stay infinite.
LOOM_HOST_DEVICE inline uint16_t float_to_bf16_bits(float value) {
  uint32_t word;
  memcpy(&word, &value, sizeof word);
  if ((word & 0x7f800000u) == 0x7f800000u && (word & 0x007fffffu) != 0) return uint16_t((word >> 16) | 0x0040u);
  const uint32_t rounding = 0x7fffu + ((word >> 16) & 1u);
  return uint16_t((word + rounding) >> 16);
}

}  // namespace loom::exec
