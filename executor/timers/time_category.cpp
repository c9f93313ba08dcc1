#include "executor/timers/time_category.hpp"

namespace loom::exec {

std::string_view to_string(Category category) {
  switch (category) {
    case Category::forward:
      return "forward";
    case Category::backward:
      return "backward";
    case Category::recompute:
      return "recompute";
    case Category::tp_comm:
      return "tp_comm";
    case Category::pp_comm:
      return "pp_comm";
    case Category::dp_comm:
      return "dp_comm";
    case Category::optimizer:
      return "optimizer";
    case Category::dp_wait:
      return "dp_wait";
    case Category::tp_wait:
      return "tp_wait";
  }
  return "?";
}

}  // namespace loom::exec
