#pragma once
// The plan form's inputs as plain values: checked field by field with the core's own rules (so
// the form shows the same messages as `loom plan`), and turned into the planner's request.

#include "core/enums.hpp"
#include "core/model_spec.hpp"
#include "planner/search_space.hpp"

#include <optional>
#include <string>
#include <vector>

namespace loom::gui {

struct PlanInputs {
  core::ModelSpec model;  // a preset's, possibly edited field by field
  int64_t nodes = 1;
  int64_t devices_per_node = 8;
  std::string profile;  // a built-in profile name or a profile JSON file
  // A mixed cluster: its device groups in pipeline order (the first group holds the first stages).
  // Empty for one kind of device; when set, nodes, devices_per_node and profile above are unused.
  std::vector<core::DeviceGroup> groups;
  int64_t global_batch_size = 0;
  core::DType dtype = core::DType::bf16;
  // Fixed in every plan searched (the overlaps are searched); flash, as `loom plan` assumes.
  core::AttentionBackend attention_backend = core::AttentionBackend::flash;
  plan::Objective objective = plan::Objective::step_time;
  // Also search uneven layer splits over the pipeline stages, as `loom plan` does by default.
  bool uneven_layer_splits = true;

  int64_t devices() const;
};

// "1x8:a100-80gb-dgx, 1x8:h100-80gb-dgx": the form's mixed-cluster field, NODESxDEVICES-PER-NODE:PROFILE
// per group in pipeline order (as `loom plan --cluster-groups`). Empty text: no groups. InvalidInput
// naming the entry ("cluster-groups entry 2 …") for anything malformed.
std::vector<core::DeviceGroup> parse_device_groups(const std::string& text);
std::string device_groups_text(const std::vector<core::DeviceGroup>& groups);

// The built-in default plan's model, cluster and batch (what `loom show` explains).
PlanInputs default_plan_inputs();

// A problem with the inputs, attached to the form field it is about: the Megatron-style key the
// core's message names first ("num-attention-heads", "global-batch-size", "profile", …), or
// empty when the message names no field of the form.
struct InputProblem {
  std::string field;
  std::string message;
};

// The first problem the core finds, or none when a search can start.
std::optional<InputProblem> find_input_problem(const PlanInputs& inputs);

// The planner's request; throws InvalidInput with the core's message on bad inputs.
plan::SearchRequest to_search_request(const PlanInputs& inputs);

}  // namespace loom::gui
