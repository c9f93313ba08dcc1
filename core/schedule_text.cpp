#include "core/schedule.hpp"

#include <fmt/format.h>

namespace loom::core {
namespace {

// Empty for actions that only appear with `include_communication` when it is off.
std::string token(const Action& a, bool include_communication, bool show_chunks) {
  const char* prefix = nullptr;
  switch (a.kind) {
    case ActionKind::forward: prefix = "F"; break;
    case ActionKind::backward: prefix = "B"; break;
    case ActionKind::send_activation: prefix = "sA"; break;
    case ActionKind::recv_activation: prefix = "rA"; break;
    case ActionKind::send_grad: prefix = "sG"; break;
    case ActionKind::recv_grad: prefix = "rG"; break;
    case ActionKind::grad_sync: return include_communication ? "GS" : "";
    case ActionKind::optimizer_step: return include_communication ? "OS" : "";
  }
  if (!a.is_compute() && !include_communication) return "";
  return show_chunks ? fmt::format("{}{}.{}", prefix, a.microbatch, a.chunk)
                     : fmt::format("{}{}", prefix, a.microbatch);
}

}  // namespace

std::string to_text(const std::vector<Action>& actions, bool include_communication,
                    bool show_chunks) {
  std::string text;
  for (const Action& a : actions) {
    const std::string t = token(a, include_communication, show_chunks);
    if (t.empty()) continue;
    if (!text.empty()) text += ' ';
    text += t;
  }
  return text;
}

std::string to_text(const PipelineSchedule& schedule, bool include_communication) {
  std::string text;
  for (size_t r = 0; r < schedule.ranks.size(); ++r) {
    if (r > 0) text += '\n';
    const std::string line =
        to_text(schedule.ranks[r], include_communication, schedule.virtual_stages > 1);
    text += fmt::format("{}:{}{}", r, line.empty() ? "" : " ", line);
  }
  return text;
}

}  // namespace loom::core
