#pragma once
// The small plan the run tests share: loom-tiny on two pipeline stages of the built-in 2-core CPU
// profile, in fp32, as `loom init` makes it.

#include "core/model_presets.hpp"
#include "core/plan.hpp"

namespace loom::testing {

inline core::Plan loom_tiny_two_stage_plan() {
  core::Plan plan;
  plan.model = core::resolve_model("loom-tiny");
  plan.cluster.nodes = 1;
  plan.cluster.devices_per_node = 2;
  plan.cluster.profile = "cpu-epyc-2core-vm";
  plan.parallel.pipeline_parallel = 2;
  plan.parallel.data_parallel = 1;
  plan.parallel.micro_batch_size = 2;
  plan.training.global_batch_size = 8;
  plan.training.dtype = core::DType::fp32;
  plan.validate();
  return plan;
}

}  // namespace loom::testing
