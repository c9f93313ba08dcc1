#pragma once
// Where a rank's time goes, in the categories the simulator predicts (so `loom compare` can set
// them side by side): forward, backward, recompute, tensor-parallel communication, pipeline
// communication (waits included), data-parallel communication, optimizer — and, apart from the
// communication, the time a rank waits for the slowest rank of its data- or tensor-parallel group
// before a collective (dp_wait, tp_wait: a barrier of the group, timed; see TimerStack::
// separates_waits), which the simulator's identical ranks do not have.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace loom::exec {

enum class Category : uint8_t {
  forward,
  backward,
  recompute,
  tp_comm,
  pp_comm,
  dp_comm,
  optimizer,
  dp_wait,
  tp_wait
};
inline constexpr size_t kCategoryCount = 9;

// The category's name in run statistics ("tp_comm"; stored as "tp_comm_s").
std::string_view to_string(Category category);

}  // namespace loom::exec
