#pragma once
// Plans the detail-view and timeline tests show: built the way `loom init` builds one.

#include "core/model_presets.hpp"
#include "core/plan.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace loom::gui::test {

struct PlanShape {
  std::string model = "gpt3-13b";
  int64_t nodes = 2;
  int64_t tp = 2;
  int64_t pp = 4;
  std::optional<int64_t> layers_per_virtual_stage;
  int64_t micro_batch_size = 1;
  int64_t microbatches = 8;
  core::Recompute recompute = core::Recompute::selective;
};

// A plan built the way `loom init` builds one: the preset (its vocabulary padded for tp by the
// plan itself), data parallelism derived from the cluster, and the global batch from the
// microbatches wanted.
inline core::Plan make_plan(const PlanShape& shape) {
  core::Plan plan;
  plan.model = core::find_model_preset(shape.model).spec;
  plan.cluster.nodes = shape.nodes;
  plan.cluster.devices_per_node = 8;
  plan.cluster.profile = "a100-80gb-dgx";
  plan.parallel.tensor_parallel = shape.tp;
  plan.parallel.pipeline_parallel = shape.pp;
  plan.parallel.layers_per_virtual_stage = shape.layers_per_virtual_stage;
  plan.parallel.schedule =
      shape.layers_per_virtual_stage ? core::Schedule::interleaved : core::Schedule::one_f_one_b;
  plan.parallel.micro_batch_size = shape.micro_batch_size;
  plan.parallel.recompute = shape.recompute;
  plan.parallel.sequence_parallel = shape.tp > 1;
  plan.parallel.distributed_optimizer = true;
  core::derive_data_parallel(plan);
  plan.training.dtype = core::DType::bf16;
  plan.training.train_iters = 100;
  plan.training.lr_warmup_iters = 10;
  plan.training.global_batch_size =
      shape.microbatches * shape.micro_batch_size * plan.parallel.data_parallel;
  plan.validate();
  return plan;
}

// gpt3-13b on 16 A100s: tp 2, pp 4, dp 2, interleaved with 2 chunks of 5 layers, 8 microbatches.
inline core::Plan interleaved_pp4_plan() {
  PlanShape shape;
  shape.layers_per_virtual_stage = 5;
  return make_plan(shape);
}

inline const core::Profile& a100() {
  static const core::Profile profile = core::resolve_profile("a100-80gb-dgx");
  return profile;
}

}  // namespace loom::gui::test
