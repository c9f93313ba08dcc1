#pragma once
// The check every layout test makes: run the layout for kSteps steps and compare its losses,
// gradient norms and final parameters with the single-rank reference of the same model and data.

#include "layout_support.hpp"

namespace loom::layout_tests {

// Runs `layout` (mpirun, --save-model) and records gtest failures for every step, gradient norm
// or parameter that differs from `reference` beyond the tolerances (with `allowance` outliers
// among the parameters).
void expect_layout_matches_reference(const Layout& layout, const Reference& reference,
                                     OutlierAllowance allowance = {});

}  // namespace loom::layout_tests
