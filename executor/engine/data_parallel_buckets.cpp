#include "executor/engine/data_parallel_buckets.hpp"

#include "core/error.hpp"
#include "executor/engine/gradient_sums.hpp"

#include <algorithm>

namespace loom::exec {
namespace {

size_t index_of(const ParameterStore& store, const Parameter& p) { return size_t(&p - store.all().data()); }

}  // namespace

DataParallelBuckets::DataParallelBuckets(const core::Plan& plan, ParameterStore& parameters,
                                         const std::vector<int64_t>& parameter_chunks, ProcessGroups& groups,
                                         TimerStack& timers)
    : plan_(plan), parameters_(parameters), groups_(groups), timers_(timers),
      zero_(plan.parallel.distributed_optimizer && groups.data->size() > 1),
      shard_size_(parameters.padded_size() / groups.data->size()) {
  const std::vector<Parameter>& all = parameters.all();
  if (parameter_chunks.size() != all.size())
    throw Error("gradient buckets: {} chunk numbers for {} parameters", parameter_chunks.size(), all.size());
  const Parameter* tied_embedding = tied_embedding_to_sum(plan, groups, parameters);
  std::vector<BucketedParameter> bucketed;
  for (const Parameter& p : all)
    bucketed.push_back({index_of(parameters, p), p.offset, p.value.numel(), parameter_chunks[index_of(parameters, p)],
                        &p == tied_embedding});
  buckets_ = assign_gradient_buckets(bucketed, plan.parallel.grad_bucket_parameters());
  bucket_of_.resize(all.size());
  for (size_t b = 0; b < buckets_.size(); ++b)
    for (const size_t p : buckets_[b].parameters) bucket_of_[p] = b;
  gradients_remaining_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) gradients_remaining_[b] = buckets_[b].parameters.size();
  reduction_started_.assign(buckets_.size(), false);
  reductions_.resize(buckets_.size());
  gathers_.resize(buckets_.size());
}

DataParallelBuckets::~DataParallelBuckets() = default;  // each PendingCollective completes itself

std::vector<size_t> DataParallelBuckets::shard_blocks(const GradientBucket& bucket) const {
  std::vector<size_t> blocks;
  for (int64_t r = 0; r < groups_.data->size(); ++r) {
    const int64_t lo = std::max(bucket.begin, r * shard_size_), hi = std::min(bucket.end, (r + 1) * shard_size_);
    blocks.push_back(size_t(std::max<int64_t>(0, hi - lo)));
  }
  return blocks;
}

void DataParallelBuckets::start_reduction(size_t b) {
  GradientBucket& bucket = buckets_[b];
  for (const size_t p : bucket.parameters)
    if (has_partial_sequence_parallel_gradient(parameters_.all()[p], plan_, groups_))
      sum_over_tensor_ranks(parameters_.all()[p], groups_);
  float* data = parameters_.flat_grads().data<float>() + bucket.begin;
  reductions_[b] = zero_ ? groups_.data->start_reduce_scatter(data, shard_blocks(bucket), ReduceOp::average)
                         : groups_.data->start_all_reduce(data, size_t(bucket.size()), ReduceOp::average);
  reduction_started_[b] = true;
}

void DataParallelBuckets::gradients_final(std::span<Parameter* const> parameters) {
  ScopedTimer timer(timers_, Category::dp_comm);
  for (Parameter* p : parameters) {
    const size_t b = bucket_of_[index_of(parameters_, *p)];
    if (gradients_remaining_[b] == 0)
      throw Error("gradient buckets: the gradient of {} was reported final twice in one step", p->name);
    // The tied embedding's bucket waits for its sum across stages, at grad_sync.
    if (--gradients_remaining_[b] == 0 && !buckets_[b].own_bucket) start_reduction(b);
  }
  for (auto& pending : reductions_)
    if (pending) pending->test();
}

void DataParallelBuckets::progress() {
  const auto pending = [](const std::unique_ptr<PendingCollective>& c) { return c != nullptr; };
  if (std::none_of(reductions_.begin(), reductions_.end(), pending) &&
      std::none_of(gathers_.begin(), gathers_.end(), pending))
    return;
  ScopedTimer timer(timers_, Category::dp_comm);
  for (auto& c : reductions_)
    if (c) c->test();
  for (auto& c : gathers_)
    if (c) c->test();
}

void DataParallelBuckets::finish_gradient_sync() {
  ScopedTimer timer(timers_, Category::dp_comm);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    if (reduction_started_[b]) continue;
    if (gradients_remaining_[b] != 0 || !buckets_[b].own_bucket)
      throw Error("gradient buckets: bucket {} ({} parameters from {}) was not complete at grad_sync", b,
                  buckets_[b].parameters.size(), parameters_.all()[buckets_[b].parameters.front()].name);
    if (Parameter* embedding = tied_embedding_to_sum(plan_, groups_, parameters_)) sum_over_embedding_stages(*embedding, groups_);
    start_reduction(b);
  }
  // Every bucket has started here; the rest of the step's reduction cannot finish before the
  // slowest data rank has finished its backward: the barrier times that wait (dp_wait) — pending
  // buckets progress during it — and what follows is the transfer that ran past the backward.
  wait_for_data_ranks(*groups_.data, timers_);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    reductions_[b]->wait();
    reductions_[b].reset();
    gradients_remaining_[b] = buckets_[b].parameters.size();
    reduction_started_[b] = false;
  }
}

void DataParallelBuckets::start_parameter_gathers() {
  if (!zero_) throw Error("parameter gathers without the distributed optimizer: every rank holds every value");
  ScopedTimer timer(timers_, Category::dp_comm);
  finish_parameter_gathers();  // a gather of the previous step that no forward waited for
  // The forward reads the buckets in the reverse of the backward's order: start them so.
  for (size_t b = buckets_.size(); b-- > 0;)
    gathers_[b] = groups_.data->start_all_gather(parameters_.flat_values().data<float>() + buckets_[b].begin,
                                                 shard_blocks(buckets_[b]));
}

void DataParallelBuckets::wait_for_parameters(std::span<Parameter* const> parameters) {
  for (Parameter* p : parameters) {
    std::unique_ptr<PendingCollective>& gather = gathers_[bucket_of_[index_of(parameters_, *p)]];
    if (!gather) continue;
    ScopedTimer timer(timers_, Category::dp_comm);
    gather->wait();
    gather.reset();
    const GradientBucket& bucket = buckets_[bucket_of_[index_of(parameters_, *p)]];
    parameters_.refresh_working_copy(bucket.begin, bucket.end);
  }
  progress();
}

void DataParallelBuckets::finish_parameter_gathers() {
  ScopedTimer timer(timers_, Category::dp_comm);
  for (size_t b = 0; b < gathers_.size(); ++b) {
    if (!gathers_[b]) continue;
    gathers_[b]->wait();
    gathers_[b].reset();
    parameters_.refresh_working_copy(buckets_[b].begin, buckets_[b].end);
  }
}

}  // namespace loom::exec
