#pragma once
// A Loom plan rebuilt from the arguments block Megatron-LM prints at start (every argument, with
// underscores: "tensor_model_parallel_size ...... 2"), the inverse of megatron_args.hpp, so that
// a Megatron run can be imported without writing its plan by hand.

#include "core/plan.hpp"
#include "planner/megatron_log.hpp"

#include <cstdint>
#include <string>

namespace loom::plan {

struct MegatronPlanOptions {
  // Not in the arguments block: how the world's ranks sit on nodes, and which profile predicts.
  int64_t devices_per_node = 8;
  std::string profile = "h100-80gb-dgx";
  std::string model_name;  // the plan's model label; empty: "megatron import"
};

// The plan the log's arguments describe; InvalidInput naming the argument for a missing or
// unreadable value ("train.log: the arguments block has no num_layers"), for features Loom does
// not model (context or expert parallelism, mixture of experts), and with core's validation
// message for a plan Megatron-LM's rules refuse.
core::Plan plan_from_megatron_arguments(const MegatronLog& log, const MegatronPlanOptions& options);

// Refuses (InvalidInput naming both values) a plan that is not the run the log's arguments
// describe: world size, tp, pp, micro and global batch, layers, hidden size, heads, sequence.
void check_plan_matches_megatron_arguments(const core::Plan& plan, const MegatronLog& log, const std::string& plan_name);

}  // namespace loom::plan
