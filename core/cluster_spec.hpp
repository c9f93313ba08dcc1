#pragma once
// The devices a plan runs on: how many, how they are grouped into nodes, which profile.

#include <cstdint>
#include <optional>
#include <string>

namespace loom::core {

struct ClusterSpec {
  int64_t nodes = 1;
  int64_t devices_per_node = 1;
  std::string profile;  // a built-in profile name or a path to a profile JSON file
  std::optional<double> price_per_device_hour;  // in the user's currency; optional

  int64_t world_size() const { return nodes * devices_per_node; }
  void validate() const;

  bool operator==(const ClusterSpec&) const = default;
};

}  // namespace loom::core
