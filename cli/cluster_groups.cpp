#include "cli/cluster_groups.hpp"

#include "core/error.hpp"

#include <charconv>
#include <optional>

namespace loom::cli {
namespace {

constexpr std::string_view kForm = "NODESxDEVICES-PER-NODE:PROFILE, e.g. 4x8:a100-80gb-dgx,4x8:h100-80gb-dgx";

// A positive decimal integer, the whole of `text`; nothing otherwise (signs, spaces, overflow).
std::optional<int64_t> positive_integer(std::string_view text) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value <= 0) return std::nullopt;
  return value;
}

}  // namespace

std::vector<core::DeviceGroup> parse_cluster_groups(std::string_view text) {
  if (text.empty()) throw InvalidInput("--cluster-groups is empty; expected {}", kForm);
  std::vector<core::DeviceGroup> groups;
  for (size_t start = 0, index = 1;; ++index) {
    const size_t comma = text.find(',', start);
    const std::string_view entry = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    const size_t colon = entry.find(':');
    const size_t times = entry.substr(0, colon).find('x');
    if (entry.empty() || colon == std::string_view::npos || times == std::string_view::npos)
      throw InvalidInput("--cluster-groups entry {} \"{}\" is not {}", index, entry, kForm);
    const std::string_view nodes_text = entry.substr(0, times);
    const std::string_view per_node_text = entry.substr(times + 1, colon - times - 1);
    const std::optional<int64_t> nodes = positive_integer(nodes_text), per_node = positive_integer(per_node_text);
    if (!nodes)
      throw InvalidInput("--cluster-groups entry {} \"{}\": the nodes \"{}\" must be a positive integer ({})", index,
                         entry, nodes_text, kForm);
    if (!per_node)
      throw InvalidInput("--cluster-groups entry {} \"{}\": the devices per node \"{}\" must be a positive integer "
                         "({})",
                         index, entry, per_node_text, kForm);
    const std::string_view profile = entry.substr(colon + 1);
    if (profile.empty())
      throw InvalidInput("--cluster-groups entry {} \"{}\" names no profile ({})", index, entry, kForm);
    groups.push_back({*nodes, *per_node, std::string(profile)});
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (groups.size() < 2)
    throw InvalidInput("--cluster-groups gives {} group; a mixed cluster has 2 or more (for one kind of device use "
                       "--devices, --devices-per-node and --profile)",
                       groups.size());
  core::ClusterSpec cluster;
  cluster.groups = groups;
  try {
    cluster.summarise_groups();  // the groups' counts, and one devices-per-node for all
  } catch (const InvalidInput& e) {
    throw InvalidInput("--cluster-groups: {}", e.what());
  }
  return groups;
}

}  // namespace loom::cli
