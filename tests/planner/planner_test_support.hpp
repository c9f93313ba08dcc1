#pragma once
// Search spaces for the planner tests: a label, a model on a cluster of A100s, and the knobs a
// test varies; the request and options built from them the same way in every test file.

#include "core/default_plan.hpp"
#include "core/model_presets.hpp"
#include "planner/search.hpp"

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace loom::plan::testing {

struct Space {
  std::string label;
  std::string model;
  int64_t devices = 8;
  int64_t global_batch = 64;
  Objective objective = Objective::step_time;
  std::optional<double> price{};
  bool allow_fewer_devices = false;
  core::AttentionBackend attention_backend = core::AttentionBackend::unfused;
  bool allow_cross_node_tp = false;
  int64_t max_micro_batch_size = 16;
  bool even_splits_only = false;
  // A mixed cluster, in pipeline order (then `devices` is ignored: the groups give the devices).
  std::vector<core::DeviceGroup> groups{};
  std::optional<core::ModelSpec> custom_model{};  // instead of the preset `model`
};

inline void PrintTo(const Space& space, std::ostream* os) { *os << space.label; }

// SearchOptions by field (designated initializers would leave `progress` unnamed).
inline SearchOptions options_for(int64_t top, bool pareto = false, int threads = 0) {
  SearchOptions options;
  options.top = top;
  options.pareto = pareto;
  options.threads = threads;
  return options;
}

inline SearchRequest request_for(const Space& s) {
  SearchRequest r;
  r.model = s.custom_model ? *s.custom_model : core::find_model_preset(s.model).spec;
  r.training = core::default_plan().training;
  r.training.global_batch_size = s.global_batch;
  r.devices = s.devices;
  r.devices_per_node = 8;
  r.profile_name = "a100-80gb-dgx";
  r.profile = core::resolve_profile(r.profile_name);
  r.price_per_device_hour = s.price;
  r.objective = s.objective;
  r.allow_fewer_devices = s.allow_fewer_devices;
  r.attention_backend = s.attention_backend;
  r.allow_cross_node_tp = s.allow_cross_node_tp;
  r.max_micro_batch_size = s.max_micro_batch_size;
  r.search_layer_splits = !s.even_splits_only;
  if (!s.groups.empty()) {
    r.groups = s.groups;
    r.devices = 0;
    for (const core::DeviceGroup& g : s.groups) {
      r.devices += g.devices();
      r.group_profiles.push_back(core::resolve_profile(g.profile));
    }
    r.devices_per_node = s.groups.front().devices_per_node;
    r.profile_name = s.groups.front().profile;
    r.profile = r.group_profiles.front();
  }
  return r;
}

inline SearchRequest request_for(const std::string& model, int64_t devices, int64_t global_batch) {
  return request_for(Space{.label = model, .model = model, .devices = devices, .global_batch = global_batch});
}

}  // namespace loom::plan::testing
