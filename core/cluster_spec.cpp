#include "core/cluster_spec.hpp"

#include "core/error.hpp"
#include "core/limits.hpp"

#include <cmath>

namespace loom::core {

std::vector<DeviceGroup> ClusterSpec::device_groups() const {
  if (mixed()) return groups;
  return {DeviceGroup{nodes, devices_per_node, profile}};
}

int64_t ClusterSpec::group_of_rank(int64_t rank) const {
  int64_t end = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    end += groups[g].devices();
    if (rank < end) return int64_t(g);
  }
  return groups.empty() ? 0 : int64_t(groups.size()) - 1;
}

void ClusterSpec::summarise_groups() {
  if (!mixed()) return;
  if (groups.size() < 2)
    throw InvalidInput("cluster.groups has 1 group; a mixed cluster lists 2 or more (for one kind of device give "
                       "nodes, devices-per-node and profile instead)");
  if (groups.size() > size_t(limits::kMaxDeviceGroups))
    throw InvalidInput("cluster.groups has {} groups; at most {} are supported", groups.size(),
                       limits::kMaxDeviceGroups);
  int64_t total_nodes = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const DeviceGroup& group = groups[g];
    if (group.nodes <= 0 || group.nodes > limits::kMaxNodes)
      throw InvalidInput("cluster.groups[{}].nodes={} must be an integer from 1 to {}", g, group.nodes,
                         limits::kMaxNodes);
    if (group.devices_per_node <= 0 || group.devices_per_node > limits::kMaxDevicesPerNode)
      throw InvalidInput("cluster.groups[{}].devices-per-node={} must be an integer from 1 to {}", g,
                         group.devices_per_node, limits::kMaxDevicesPerNode);
    if (group.profile.empty())
      throw InvalidInput("cluster.groups[{}].profile is empty; expected a profile name (see `loom presets "
                         "--profiles`) or a profile JSON file",
                         g);
    // Ranks fill nodes in order, devices-per-node at a time, across the groups (the launcher's
    // host list); nodes of different sizes would put a node's ranks in two groups.
    if (group.devices_per_node != groups[0].devices_per_node)
      throw InvalidInput("cluster.groups[{}].devices-per-node={} differs from cluster.groups[0].devices-per-node={}; "
                         "the groups of a mixed cluster must have the same devices per node",
                         g, group.devices_per_node, groups[0].devices_per_node);
    total_nodes += group.nodes;  // at most kMaxDeviceGroups × kMaxNodes: no overflow
  }
  if (total_nodes > limits::kMaxNodes)
    throw InvalidInput("cluster.groups hold {} nodes in all, more than the supported {}", total_nodes,
                       limits::kMaxNodes);
  nodes = total_nodes;
  devices_per_node = groups[0].devices_per_node;
  profile = groups[0].profile;
}

void ClusterSpec::validate() const {
  if (mixed()) {
    ClusterSpec summary = *this;
    summary.summarise_groups();  // checks each group
    if (summary.nodes != nodes || summary.devices_per_node != devices_per_node || summary.profile != profile)
      throw InvalidInput("cluster: nodes={}, devices-per-node={}, profile={} do not summarise its groups (nodes={}, "
                         "devices-per-node={}, profile={})",
                         nodes, devices_per_node, profile, summary.nodes, summary.devices_per_node, summary.profile);
  }
  if (nodes <= 0) throw InvalidInput("nodes={} must be a positive integer", nodes);
  if (devices_per_node <= 0)
    throw InvalidInput("devices-per-node={} must be a positive integer", devices_per_node);
  // Bounds (core/limits.hpp) keep the device count and every per-rank table Loom builds within reason.
  if (nodes > limits::kMaxNodes)
    throw InvalidInput("nodes={} is larger than the supported {}", nodes, limits::kMaxNodes);
  if (devices_per_node > limits::kMaxDevicesPerNode)
    throw InvalidInput("devices-per-node={} is larger than the supported {}", devices_per_node,
                       limits::kMaxDevicesPerNode);
  if (world_size() > limits::kMaxDevices)
    throw InvalidInput("nodes={} × devices-per-node={} = {} devices is more than the supported {}", nodes,
                       devices_per_node, world_size(), limits::kMaxDevices);
  if (profile.empty())
    throw InvalidInput("profile is empty; expected a profile name (see `loom presets --profiles`) "
                       "or a profile JSON file");
  if (price_per_device_hour &&
      !(std::isfinite(*price_per_device_hour) && *price_per_device_hour >= 0 &&
        *price_per_device_hour <= limits::kMaxPricePerDeviceHour))
    throw InvalidInput("price-per-device-hour={} must be a non-negative number, at most {}",
                       *price_per_device_hour, limits::kMaxPricePerDeviceHour);
}

}  // namespace loom::core
