#pragma once
// The one binary unit the views and models show memory in.

#include <cstdint>

namespace loom::gui {

inline constexpr double kGiB = double(int64_t(1) << 30);

}  // namespace loom::gui
