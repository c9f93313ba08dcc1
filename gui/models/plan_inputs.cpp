#include "gui/models/plan_inputs.hpp"

#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/profile.hpp"

#include <array>
#include <cctype>
#include <string_view>

namespace loom::gui {
namespace {

struct FieldKey {
  std::string_view in_message;  // as the core's messages name it
  std::string_view field;       // the form field it belongs to
};
// The planner names the device count, which the form sets through the node count.
constexpr std::array<FieldKey, 13> kFieldKeys = {{{"num-layers", "num-layers"},
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

}  // namespace

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
  cluster.nodes = inputs.nodes;
  cluster.devices_per_node = inputs.devices_per_node;
  cluster.profile = inputs.profile;
  cluster.validate();
  request.devices = inputs.devices();
  request.devices_per_node = inputs.devices_per_node;
  request.profile_name = inputs.profile;
  try {
    request.profile = core::resolve_profile(inputs.profile);
  } catch (const InvalidInput& e) {
    // Whatever the file's problem, it belongs next to the profile field.
    throw InvalidInput("profile '{}': {}", inputs.profile, e.what());
  }
  request.objective = inputs.objective;
  request.attention_backend = inputs.attention_backend;
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
