#pragma once
// A computed value against the value it should have, within a relative tolerance: the tests of
// closed forms and measured tables say how exact each comparison is.

#include <gtest/gtest.h>

#include <cmath>

namespace loom::testing {

inline void expect_relative(double actual, double expected, double tolerance) {
  EXPECT_LE(std::abs(actual - expected), tolerance * std::abs(expected)) << actual << " vs " << expected;
}

}  // namespace loom::testing
