#pragma once
// The gradient sums that come before the data-parallel reduction, shared by the one-bucket
// synchronisation at grad_sync (Optimizer) and the overlapped per-bucket one
// (DataParallelBuckets): the tensor-parallel sum of gradients that sequence parallelism leaves
// partial, and the sum of the tied embedding's two copies across the first and last stages.

#include "core/plan.hpp"
#include "executor/comm/communicator.hpp"
#include "executor/model/parameters.hpp"
#include "executor/timers/timer_stack.hpp"

namespace loom::exec {

// With sequence parallelism each tensor rank saw only its rows: the gradients of the replicated
// norms and row-parallel biases are partial sums over tensor ranks (the positions' are not: they
// are computed from the gathered rows).
bool has_partial_sequence_parallel_gradient(const Parameter& p, const core::Plan& plan, const ProcessGroups& groups);

// The tied embedding lives on the first and the last stage, and both copies need the sum of
// their gradients. (Untied, only the first stage holds wte: an all-reduce there alone would wait
// forever.) The parameter to sum on this rank, or null.
Parameter* tied_embedding_to_sum(const core::Plan& plan, const ProcessGroups& groups, ParameterStore& parameters);

// Blocking sums, in place, over the tensor group and the embedding group.
void sum_over_tensor_ranks(Parameter& p, ProcessGroups& groups);
void sum_over_embedding_stages(Parameter& p, ProcessGroups& groups);

// Just before the data-parallel reduction: a barrier of the data group, timed as dp_wait, so that
// the reduction's dp_comm is its transfer and not the wait for the data rank that is behind (the
// simulator's replicas are identical and never wait for each other). Nothing when the timers do
// not separate waits.
void wait_for_data_ranks(Communicator& data_group, TimerStack& timers);

}  // namespace loom::exec
