#include "gui/models/plan_inputs.hpp"

#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/profile.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <charconv>
#include <string_view>

namespace loom::gui {
namespace {

struct FieldKey {
  std::string_view in_message;  // as the core's messages name it
  std::string_view field;       // the form field it belongs to
};
// The planner names the device count, which the form sets through the node count.
constexpr std::array<FieldKey, 15> kFieldKeys = {{{"cluster-groups", "cluster-groups"},
                                                  {"cluster.groups", "cluster-groups"},
                                                  {"num-layers", "num-layers"},
                                                  {"hidden-size", "hidden-size"},
                                                  {"num-attention-heads", "num-attention-heads"},
                                                  {"num-query-groups", "num-query-groups"},
                                                  {"ffn-hidden-size", "ffn-hidden-size"},
                                                  {"vocab-size", "vocab-size"},
                                                  {"padded-vocab-size", "vocab-size"},
                                                  {"seq-length", "seq-length"},
                                                  {"global-batch-size", "global-batch-size"},
                                                  {"devices-per-node", "devices-per-node"},
                                                  {"devices=", "nodes"},
                                                  {"nodes", "nodes"},
                                                  {"profile", "profile"}}};

// The field a message is about: the one it names first ("a=3 does not divide b=32" is about a).
// Empty when it names none of the form's fields.
std::string field_named_first(const std::string& message) {
  std::string_view best;
  size_t best_at = std::string::npos;
  for (const FieldKey& key : kFieldKeys) {
    const size_t at = message.find(key.in_message);
    // A key must start a word: "hidden-size" is not inside "ffn-hidden-size".
    if (at == std::string::npos || (at > 0 && (std::isalnum(static_cast<unsigned char>(message[at - 1])) ||
                                               (message[at - 1] == '-' && at > 1 && message[at - 2] != '-'))))
      continue;
    if (at < best_at) best_at = at, best = key.field;
  }
  return std::string(best);
}

// A positive decimal integer, the whole of `text`; nothing otherwise.
std::optional<int64_t> positive_integer(std::string_view text) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value <= 0) return std::nullopt;
  return value;
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

}  // namespace

int64_t PlanInputs::devices() const {
  if (groups.empty()) return nodes * devices_per_node;
  int64_t sum = 0;
  for (const core::DeviceGroup& group : groups) sum += group.devices();
  return sum;
}

std::vector<core::DeviceGroup> parse_device_groups(const std::string& text) {
  constexpr std::string_view kForm = "NODESxDEVICES-PER-NODE:PROFILE, e.g. 1x8:a100-80gb-dgx, 1x8:h100-80gb-dgx";
  std::vector<core::DeviceGroup> groups;
  if (trimmed(text).empty()) return groups;
  std::string_view rest = text;
  for (size_t index = 1;; ++index) {
    const size_t comma = rest.find(',');
    const std::string_view entry = trimmed(rest.substr(0, comma));
    const size_t colon = entry.find(':');
    const size_t times = entry.substr(0, colon).find('x');
    if (colon == std::string_view::npos || times == std::string_view::npos)
      throw InvalidInput("cluster-groups entry {} \"{}\" is not {}", index, entry, kForm);
    const std::optional<int64_t> nodes = positive_integer(trimmed(entry.substr(0, times)));
    const std::optional<int64_t> per_node = positive_integer(trimmed(entry.substr(times + 1, colon - times - 1)));
    const std::string_view profile = trimmed(entry.substr(colon + 1));
    if (!nodes || !per_node || profile.empty())
      throw InvalidInput("cluster-groups entry {} \"{}\": expected positive node and device counts and a profile ({})",
                         index, entry, kForm);
    groups.push_back({*nodes, *per_node, std::string(profile)});
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return groups;
}

std::string device_groups_text(const std::vector<core::DeviceGroup>& groups) {
  std::string text;
  for (const core::DeviceGroup& group : groups)
    text += fmt::format("{}{}x{}:{}", text.empty() ? "" : ", ", group.nodes, group.devices_per_node, group.profile);
  return text;
}

PlanInputs default_plan_inputs() {
  const core::Plan plan = core::default_plan();
  PlanInputs inputs;
  inputs.model = plan.model;
  inputs.nodes = plan.cluster.nodes;
  inputs.devices_per_node = plan.cluster.devices_per_node;
  inputs.profile = plan.cluster.profile;
  inputs.global_batch_size = plan.training.global_batch_size;
  inputs.dtype = plan.training.dtype;
  return inputs;
}

plan::SearchRequest to_search_request(const PlanInputs& inputs) {
  plan::SearchRequest request;
  request.model = inputs.model;
  request.model.validate();
  request.training = core::default_plan().training;
  request.training.global_batch_size = inputs.global_batch_size;
  request.training.dtype = inputs.dtype;
  core::ClusterSpec cluster;
  if (inputs.groups.empty()) {
    cluster.nodes = inputs.nodes;
    cluster.devices_per_node = inputs.devices_per_node;
    cluster.profile = inputs.profile;
  } else {
    // A mixed cluster: the groups give the counts and the profiles (summarised into the fields
    // the planner's request shares with a cluster of one kind).
    cluster.groups = inputs.groups;
    cluster.summarise_groups();
    request.groups = inputs.groups;
  }
  cluster.validate();
  request.devices = cluster.world_size();
  request.devices_per_node = cluster.devices_per_node;
  request.profile_name = cluster.profile;
  for (const core::DeviceGroup& group : cluster.device_groups()) {
    try {
      const core::Profile profile = core::resolve_profile(group.profile);
      if (cluster.mixed()) request.group_profiles.push_back(profile);
    } catch (const InvalidInput& e) {
      // Whatever the file's problem, it belongs next to the field that names it.
      if (cluster.mixed()) throw InvalidInput("cluster-groups: profile '{}': {}", group.profile, e.what());
      throw InvalidInput("profile '{}': {}", group.profile, e.what());
    }
  }
  request.profile = cluster.mixed() ? request.group_profiles.front() : core::resolve_profile(cluster.profile);
  request.objective = inputs.objective;
  request.attention_backend = inputs.attention_backend;
  request.search_layer_splits = inputs.uneven_layer_splits;
  request.validate();
  return request;
}

std::optional<InputProblem> find_input_problem(const PlanInputs& inputs) {
  try {
    to_search_request(inputs);
    return std::nullopt;
  } catch (const Error& e) {
    const std::string message = e.what();
    return InputProblem{field_named_first(message), message};
  }
}

}  // namespace loom::gui
