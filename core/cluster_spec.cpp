#include "core/cluster_spec.hpp"

#include "core/error.hpp"

#include <cmath>

namespace loom::core {

void ClusterSpec::validate() const {
  if (nodes <= 0) throw InvalidInput("nodes={} must be a positive integer", nodes);
  if (devices_per_node <= 0)
    throw InvalidInput("devices-per-node={} must be a positive integer", devices_per_node);
  // Bounds keep the device count and every per-rank table Loom builds within reason.
  if (nodes > (1 << 20)) throw InvalidInput("nodes={} is larger than the supported {}", nodes, 1 << 20);
  if (devices_per_node > 1024)
    throw InvalidInput("devices-per-node={} is larger than the supported 1024", devices_per_node);
  if (profile.empty())
    throw InvalidInput("profile is empty; expected a profile name (see `loom presets --profiles`) "
                       "or a profile JSON file");
  if (price_per_device_hour && !(std::isfinite(*price_per_device_hour) && *price_per_device_hour >= 0))
    throw InvalidInput("price-per-device-hour={} must be a non-negative number", *price_per_device_hour);
}

}  // namespace loom::core
