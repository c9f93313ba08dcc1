#include "core/kernel_bytes.hpp"

namespace loom::core::kernel_bytes {

bool charged_only_when_measured(std::string_view kernel) {
  return kernel == kBias || kernel == kBiasBackward || kernel == kDropout || kernel == kQueryGroups ||
         kernel == kQueryGroupsBackward;
}

std::string_view forward_name(std::string_view kernel) {
  constexpr std::string_view suffix = "_backward";
  if (kernel.size() > suffix.size() && kernel.substr(kernel.size() - suffix.size()) == suffix)
    return kernel.substr(0, kernel.size() - suffix.size());
  return kernel;
}

}  // namespace loom::core::kernel_bytes
