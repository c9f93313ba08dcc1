#include "core/profile.hpp"

#include "core/embedded_profiles.hpp"
#include "core/error.hpp"
#include "core/json_reader.hpp"

#include <filesystem>

namespace loom::core {


const LinkSpec* Profile::link(std::string_view level) const {
  for (const LinkSpec& l : links)
    if (l.level == level) return &l;
  return nullptr;
}

namespace {

DeviceSpec device_from_json(const Json& document, const std::string& path) {
  JsonObjectReader reader(document, path);
  DeviceSpec device;
  device.name = reader.required_string("name");
  device.memory_bytes = reader.required_int("memory_bytes");
  if (device.memory_bytes <= 0)
    throw InvalidInput("{}={} must be positive", reader.field("memory_bytes"), device.memory_bytes);
  JsonObjectReader peaks(reader.required_object("peak_flops_per_s"), reader.field("peak_flops_per_s"));
  for (DType dtype : {DType::fp32, DType::bf16, DType::fp16}) {
    const std::string key(to_string(dtype));
    if (!peaks.has(key)) {
      peaks.accept(key);
      continue;
    }
    const double value = peaks.optional_number(key, 0.0);
    if (!(value > 0)) throw InvalidInput("{}={} must be positive", peaks.field(key), value);
    device.peak_flops_per_s[dtype] = value;
  }
  peaks.finish();
  device.memory_bandwidth_bytes_per_s = reader.optional_number("memory_bandwidth_bytes_per_s", 0.0);
  reader.finish();
  return device;
}

LinkSpec link_from_json(const Json& document, const std::string& path) {
  JsonObjectReader reader(document, path);
  LinkSpec link;
  link.level = reader.required_string("level");
  if (link.level != "intra-node" && link.level != "inter-node")
    throw InvalidInput("{}=\"{}\" is not valid; expected intra-node or inter-node", reader.field("level"),
                       link.level);
  link.latency_s = reader.optional_number("latency_s", 0.0);
  link.bandwidth_bytes_per_s = reader.optional_number("bandwidth_bytes_per_s", 0.0);
  if (!(link.bandwidth_bytes_per_s > 0) || link.latency_s < 0)
    throw InvalidInput("{}: bandwidth_bytes_per_s must be positive and latency_s non-negative", path);
  reader.finish();
  return link;
}

}  // namespace

Profile profile_from_json(const Json& document, std::string_view source) {
  JsonObjectReader reader(document, "");
  const std::string format = reader.required_string("format");
  if (format != kProfileFormat)
    throw InvalidInput("{}: format=\"{}\" is not a Loom profile; expected \"{}\"", source, format,
                       kProfileFormat);
  const int64_t version = reader.required_int("version");
  if (version != kProfileVersion)
    throw InvalidInput("{}: profile version {} is not supported; expected {}", source, version,
                       kProfileVersion);
  Profile profile;
  profile.name = reader.required_string("name");
  profile.provenance = reader.required_string("provenance");
  if (profile.provenance != "measured" && profile.provenance != "datasheet")
    throw InvalidInput("{}: provenance=\"{}\" is not valid; expected measured or datasheet", source,
                       profile.provenance);
  profile.description = reader.optional_string("description", "");
  profile.source = reader.optional_string("source", "");
  profile.device = device_from_json(reader.required_object("device"), "device");
  reader.accept("links");
  if (reader.has("links")) {
    const Json& links = document.at("links");
    if (!links.is_array()) throw InvalidInput("{}: links: expected an array", source);
    for (size_t i = 0; i < links.size(); ++i)
      profile.links.push_back(link_from_json(links[i], fmt::format("links[{}]", i)));
  }
  reader.accept("tables");
  if (reader.has("tables")) profile.tables = document.at("tables");
  reader.finish();
  return profile;
}

Json to_json(const Profile& profile) {
  Json peaks = Json::object();
  for (const auto& [dtype, flops] : profile.device.peak_flops_per_s) peaks[std::string(to_string(dtype))] = flops;
  Json links = Json::array();
  for (const LinkSpec& link : profile.links)
    links.push_back({{"level", link.level},
                     {"latency_s", link.latency_s},
                     {"bandwidth_bytes_per_s", link.bandwidth_bytes_per_s}});
  return {{"format", kProfileFormat},
          {"version", kProfileVersion},
          {"name", profile.name},
          {"provenance", profile.provenance},
          {"description", profile.description},
          {"source", profile.source},
          {"device",
           {{"name", profile.device.name},
            {"memory_bytes", profile.device.memory_bytes},
            {"peak_flops_per_s", peaks},
            {"memory_bandwidth_bytes_per_s", profile.device.memory_bandwidth_bytes_per_s}}},
          {"links", links},
          {"tables", profile.tables}};
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
  if (std::filesystem::exists(path))
    return profile_from_json(parse_json_text(read_text_file(path), path), path);
  std::string known;
  for (const Profile& profile : builtin_profiles()) known += (known.empty() ? "" : ", ") + profile.name;
  throw InvalidInput("unknown profile '{}'; expected a profile JSON file or one of: {}", name_or_file, known);
}

}  // namespace loom::core
