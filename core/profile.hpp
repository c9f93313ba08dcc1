#pragma once
// A profile describes one kind of device and its links, and says where its numbers came from
// (DESIGN.md §5): "measured" by `loom profile` on that hardware, or "datasheet" figures.
// This is the part of the format every profile has; measured kernel and collective tables are
// kept as JSON under "tables" and read by the simulator.

#include "core/json_reader.hpp"

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/enums.hpp"

namespace loom::core {

inline constexpr std::string_view kProfileFormat = "loom-profile";
inline constexpr int kProfileVersion = 1;

struct DeviceSpec {
  std::string name;  // "NVIDIA A100-SXM4-80GB"
  int64_t memory_bytes = 0;
  std::map<DType, double> peak_flops_per_s;  // dense, per dtype
  double memory_bandwidth_bytes_per_s = 0;
};

// One level of the interconnect: "intra-node" (NVLink, shared memory) or "inter-node" (network).
struct LinkSpec {
  std::string level;
  double latency_s = 0;
  double bandwidth_bytes_per_s = 0;  // per device, one direction
};

struct Profile {
  std::string name;
  std::string provenance;  // "measured" or "datasheet"
  std::string description;
  std::string source;  // datasheet reference, or host/date/library versions when measured
  DeviceSpec device;
  std::vector<LinkSpec> links;
  Json tables = Json::object();

  const LinkSpec* link(std::string_view level) const;
};

Profile profile_from_json(const Json& json, std::string_view source);
Json to_json(const Profile& profile);

// Profiles shipped in profiles/ and compiled into the binary.
std::span<const Profile> builtin_profiles();
// A built-in profile name, or a path to a profile JSON file. Unknown → InvalidInput with the list.
Profile resolve_profile(std::string_view name_or_file);

}  // namespace loom::core
