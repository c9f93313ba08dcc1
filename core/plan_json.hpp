#pragma once
// plan.json and its parts in JSON. Keys follow Megatron-LM's argument names; the data-parallel
// size is derived from the cluster and never written.

#include "core/plan.hpp"

#include "core/json_reader.hpp"

#include <string>
#include <string_view>

namespace loom::core {

inline constexpr std::string_view kPlanFormat = "loom-plan";
inline constexpr int kPlanVersion = 1;

Json to_json(const ModelSpec& model);
Json to_json(const TrainSpec& training);
Json to_json(const ClusterSpec& cluster);
Json to_json(const ParallelPlan& parallel);
Json to_json(const Plan& plan);

// Readers check types and reject unknown keys; `path` prefixes field names in messages.
// They do not run validate(): plan_from_json does, after deriving the data-parallel size.
ModelSpec model_from_json(const Json& json, const std::string& path = "model");
TrainSpec train_from_json(const Json& json, const std::string& path = "training");
ClusterSpec cluster_from_json(const Json& json, const std::string& path = "cluster");
ParallelPlan parallel_from_json(const Json& json, const std::string& path = "parallel");

// A whole plan document: read, derive data-parallel size, validate.
Plan plan_from_json(const Json& json);
Plan read_plan_text(std::string_view text, std::string_view source);
Plan read_plan_file(const std::string& path);  // "-" reads standard input

// A model given as a preset name or as a model JSON file (a plan's "model" object on its own).
ModelSpec read_model_file(const std::string& path);

// Fills in data_parallel from the cluster's device count (0 when tp·pp does not divide it,
// which validate() then reports). Validates the cluster first.
void derive_data_parallel(Plan& plan);

}  // namespace loom::core
