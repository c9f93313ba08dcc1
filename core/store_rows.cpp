#include "core/store_rows.hpp"

#include "core/plan_json.hpp"

namespace loom::core {

PlanRow plan_row(const Plan& plan, const std::string& name) {
  PlanRow row;
  row.name = name;
  row.model_name = plan.model.name.empty() ? "unnamed" : plan.model.name;
  row.world_size = plan.cluster.world_size();
  row.tp = plan.parallel.tensor_parallel;
  row.pp = plan.parallel.pipeline_parallel;
  row.dp = plan.parallel.data_parallel;
  row.vpp = plan.virtual_stages();
  row.micro_batch_size = plan.parallel.micro_batch_size;
  row.global_batch_size = plan.training.global_batch_size;
  row.schedule = std::string(to_string(plan.parallel.schedule));
  row.recompute = std::string(to_string(plan.parallel.recompute));
  row.sequence_parallel = plan.parallel.sequence_parallel;
  row.distributed_optimizer = plan.parallel.distributed_optimizer;
  row.plan_json = to_json(plan).dump();
  return row;
}

}  // namespace loom::core
