#include "executor/engine/gradient_sums.hpp"

#include "executor/model/model_parameters.hpp"

namespace loom::exec {

bool has_partial_sequence_parallel_gradient(const Parameter& p, const core::Plan& plan, const ProcessGroups& groups) {
  return plan.parallel.sequence_parallel && groups.tensor->size() > 1 && p.sharding == Sharding::replicated &&
         p.name != "wpe.weight";
}

Parameter* tied_embedding_to_sum(const core::Plan& plan, const ProcessGroups& groups, ParameterStore& parameters) {
  const bool tied = !plan.model.untie_embeddings_and_output_weights;
  const std::string embedding = token_embedding_name(plan.model);
  if (!tied || !groups.embedding || groups.embedding->size() < 2 || !parameters.contains(embedding)) return nullptr;
  return &parameters[embedding];
}

void sum_over_tensor_ranks(Parameter& p, ProcessGroups& groups) {
  groups.tensor->all_reduce(p.grad.data<float>(), size_t(p.grad.numel()), ReduceOp::sum);
}

void sum_over_embedding_stages(Parameter& p, ProcessGroups& groups) {
  groups.embedding->all_reduce(p.grad.data<float>(), size_t(p.grad.numel()), ReduceOp::sum);
}

void wait_for_data_ranks(Communicator& data_group, TimerStack& timers) {
  if (!timers.separates_waits() || data_group.size() < 2) return;
  ScopedTimer wait(timers, Category::dp_wait);
  data_group.barrier();
}

}  // namespace loom::exec
