#include "core/cluster_spec.hpp"

#include "core/error.hpp"
#include "core/limits.hpp"

#include <cmath>

namespace loom::core {

void ClusterSpec::validate() const {
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
