#pragma once
// The devices a plan runs on: how many, how they are grouped into nodes, which profile.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom::core {

// Nodes of one kind of device in a mixed cluster.
struct DeviceGroup {
  int64_t nodes = 1;
  int64_t devices_per_node = 1;
  std::string profile;
  int64_t devices() const { return nodes * devices_per_node; }
  bool operator==(const DeviceGroup&) const = default;
};

struct ClusterSpec {
  int64_t nodes = 1;
  int64_t devices_per_node = 1;
  std::string profile;  // a built-in profile name or a path to a profile JSON file
  std::optional<double> price_per_device_hour;  // in the user's currency; optional

  // A mixed cluster: two or more groups of nodes, each of one kind of device, placed in this order
  // along the pipeline dimension (the first group holds the first pipeline stages). Empty for a
  // cluster of one kind. When set, the fields above summarise it: nodes is the groups' sum,
  // devices_per_node their common value (groups must agree on it: ranks fill nodes in order) and
  // profile the first group's.
  std::vector<DeviceGroup> groups;

  bool mixed() const { return !groups.empty(); }
  int64_t world_size() const { return nodes * devices_per_node; }
  // The groups, or the one group a cluster of one kind is.
  std::vector<DeviceGroup> device_groups() const;
  // The group rank `rank` sits in (0 on a cluster of one kind).
  int64_t group_of_rank(int64_t rank) const;
  // For a mixed cluster: sets nodes, devices_per_node and profile from the groups (after checking
  // that they agree on devices-per-node).
  void summarise_groups();
  void validate() const;

  bool operator==(const ClusterSpec&) const = default;
};

}  // namespace loom::core
