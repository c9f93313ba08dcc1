#include "core/profile.hpp"

#include "core/embedded_profiles.hpp"
#include "core/error.hpp"

#include <filesystem>
#include <system_error>

namespace loom::core {

std::string_view to_string(GemmLayout layout) {
  switch (layout) {
    case GemmLayout::nn: return "nn";
    case GemmLayout::nt: return "nt";
    case GemmLayout::tn: return "tn";
  }
  return "?";
}

double TableTimeScales::collectives(std::string_view level) const {
  auto it = collectives_by_level.find(std::string(level));
  return it != collectives_by_level.end() ? it->second : 1.0;
}

double MeasuredLoad::contention(int64_t busy_ranks) const {
  if (busy_ranks <= 1 || probe_busy_ranks_per_node <= 1) return busy_ranks <= 1 ? 1.0 : slowdown;
  if (busy_ranks >= probe_busy_ranks_per_node) return slowdown;
  return 1.0 + (slowdown - 1.0) * double(busy_ranks - 1) / double(probe_busy_ranks_per_node - 1);
}

const LinkSpec* Profile::link(std::string_view level) const {
  for (const LinkSpec& l : links)
    if (l.level == level) return &l;
  return nullptr;
}

double Profile::peak_flops_per_s(DType dtype) const {
  auto it = device.peak_flops_per_s.find(dtype);
  if (it == device.peak_flops_per_s.end())
    throw InvalidInput("profile '{}' gives no peak FLOP/s for {}", name, to_string(dtype));
  return it->second;
}

std::span<const Profile> builtin_profiles() {
  static const std::vector<Profile> profiles = [] {
    std::vector<Profile> parsed;
    for (const EmbeddedFile& file : embedded_profile_files())
      parsed.push_back(profile_from_json(parse_json_text(file.contents, file.name), file.name));
    return parsed;
  }();
  return profiles;
}

Profile resolve_profile(std::string_view name_or_file) {
  for (const Profile& profile : builtin_profiles())
    if (profile.name == name_or_file) return profile;
  const std::string path(name_or_file);
  // Whatever is at the path (a directory, a FIFO, a file that cannot be read) is read, so that
  // the reader names what is wrong with it. A name too long to be a path is an unknown name.
  std::error_code lookup;
  if (std::filesystem::exists(path, lookup) || (lookup && lookup != std::errc::filename_too_long))
    return profile_from_json(parse_json_text(read_text_file(path), path), path);
  std::string known;
  for (const Profile& profile : builtin_profiles()) known += (known.empty() ? "" : ", ") + profile.name;
  throw InvalidInput("unknown profile '{}'; expected a profile JSON file or one of: {}", text_excerpt(name_or_file),
                     known);
}

}  // namespace loom::core

namespace loom::core {

std::vector<Profile> resolve_group_profiles(const ClusterSpec& cluster) {
  std::vector<Profile> profiles;
  for (const DeviceGroup& group : cluster.device_groups()) profiles.push_back(resolve_profile(group.profile));
  return profiles;
}

}  // namespace loom::core
