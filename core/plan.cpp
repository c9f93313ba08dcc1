#include "core/plan.hpp"

#include "core/checked_arithmetic.hpp"
#include "core/error.hpp"
#include "core/limits.hpp"
#include "core/pipeline_split_rules.hpp"

#include <array>

namespace loom::core {
namespace {

// The rules are Megatron-LM's (megatron/training/arguments.py and core/parallel_state.py). They
// are written once, here: validate() turns the first violation into an error message naming each
// field the way plan.json spells it, while the planner only asks which rule failed, without
// paying for the message. `fail(rule, message)` receives the message as a callable.
template <typename Fail>
bool check_parallel_rules(const Plan& plan, Fail&& fail) {
  const ModelSpec& m = plan.model;
  const ParallelPlan& p = plan.parallel;
  const int64_t t = p.tensor_parallel;
  if (t <= 0)
    return fail(PlanRule::positive_sizes,
                [&] { return fmt::format("tensor-model-parallel-size={} must be a positive integer", t); });
  if (p.pipeline_parallel <= 0)
    return fail(PlanRule::positive_sizes, [&] {
      return fmt::format("pipeline-model-parallel-size={} must be a positive integer", p.pipeline_parallel);
    });
  if (p.micro_batch_size <= 0)
    return fail(PlanRule::positive_sizes,
                [&] { return fmt::format("micro-batch-size={} must be a positive integer", p.micro_batch_size); });
  // The maxima (core/limits.hpp) follow from the model's (tp divides the heads, pp the layers);
  // checked here so that an absurd size is named as such.
  if (t > limits::kMaxTensorParallel)
    return fail(PlanRule::positive_sizes, [&] {
      return fmt::format("tensor-model-parallel-size={} is larger than the supported {}", t, limits::kMaxTensorParallel);
    });
  if (p.pipeline_parallel > limits::kMaxPipelineParallel)
    return fail(PlanRule::positive_sizes, [&] {
      return fmt::format("pipeline-model-parallel-size={} is larger than the supported {}", p.pipeline_parallel,
                         limits::kMaxPipelineParallel);
    });
  if (p.micro_batch_size > limits::kMaxMicroBatch)
    return fail(PlanRule::positive_sizes, [&] {
      return fmt::format("micro-batch-size={} is larger than the supported {}", p.micro_batch_size,
                         limits::kMaxMicroBatch);
    });

  // Tensor parallelism splits heads, key/value groups, the MLP and the vocabulary.
  if (m.num_attention_heads % t != 0)
    return fail(PlanRule::heads_divisible_by_tp, [&] {
      return fmt::format("tensor-model-parallel-size={} does not divide num-attention-heads={}", t, m.num_attention_heads);
    });
  if (m.query_groups() % t != 0)
    return fail(PlanRule::query_groups_divisible_by_tp, [&] {
      return fmt::format("tensor-model-parallel-size={} does not divide num-query-groups={}", t, m.query_groups());
    });
  if (m.ffn_hidden_size % t != 0)
    return fail(PlanRule::ffn_divisible_by_tp, [&] {
      return fmt::format("tensor-model-parallel-size={} does not divide ffn-hidden-size={}", t, m.ffn_hidden_size);
    });
  // A derived vocabulary is padded for t and always splits; only a pinned one can fail.
  if (m.padded_vocab_size && *m.padded_vocab_size % t != 0)
    return fail(PlanRule::vocab_divisible_by_tp, [&] {
      const int64_t multiple = m.make_vocab_size_divisible_by * t;
      const int64_t padded = (*m.padded_vocab_size + multiple - 1) / multiple * multiple;
      return fmt::format("tensor-model-parallel-size={} does not divide padded-vocab-size={}; pad the vocabulary "
                         "to a multiple of {} (e.g. {}), or give vocab-size instead to have it padded for each "
                         "tensor-model-parallel-size",
                         t, *m.padded_vocab_size, multiple, padded);
    });
  if (p.sequence_parallel && t == 1)
    return fail(PlanRule::sequence_parallel_needs_tp, [&] {
      return fmt::format("sequence-parallel=true needs tensor-model-parallel-size > 1 (it is 1)");
    });
  if (p.sequence_parallel && m.seq_length % t != 0)
    return fail(PlanRule::seq_length_divisible_by_tp, [&] {
      return fmt::format("sequence-parallel=true needs tensor-model-parallel-size={} to divide seq-length={}", t,
                         m.seq_length);
    });

  // Megatron-Core's overlaps (megatron/training/arguments.py): each needs the machinery it hides.
  if (p.tp_comm_overlap && !p.sequence_parallel)
    return fail(PlanRule::tp_comm_overlap_needs_sequence_parallel, [&] {
      return std::string("tp-comm-overlap=true needs sequence-parallel=true (the overlap splits the sequence-parallel "
                         "all-gathers and reduce-scatters into chunks beside the GEMMs)");
    });
  if (p.overlap_param_gather && !p.distributed_optimizer)
    return fail(PlanRule::overlap_param_gather_needs_distributed_optimizer, [&] {
      return std::string("overlap-param-gather=true needs use-distributed-optimizer=true (only the distributed "
                         "optimizer gathers parameters)");
    });
  if (p.overlap_param_gather && !p.overlap_grad_reduce)
    return fail(PlanRule::overlap_param_gather_needs_overlap_grad_reduce, [&] {
      return std::string("overlap-param-gather=true needs overlap-grad-reduce=true (the gathers follow the gradient "
                         "buckets)");
    });
  if (p.ddp_bucket_size && (*p.ddp_bucket_size <= 0 || *p.ddp_bucket_size > limits::kMaxBucketParameters))
    return fail(PlanRule::bucket_size_positive, [&] {
      return fmt::format("ddp-bucket-size={} must be a number of parameters from 1 to {}", *p.ddp_bucket_size,
                         limits::kMaxBucketParameters);
    });
  if (p.ddp_bucket_size && !p.overlap_grad_reduce)
    return fail(PlanRule::bucket_size_needs_overlap_grad_reduce, [&] {
      return fmt::format("ddp-bucket-size={} has no effect without overlap-grad-reduce=true (all gradients are then "
                         "reduced as one bucket); remove it or set overlap-grad-reduce=true",
                         *p.ddp_bucket_size);
    });

  // Pipeline parallelism splits the layers, in virtual chunks with the interleaved schedule.
  if (!detail::check_pipeline_split(plan, fail)) return false;

  // After the model rules, so that a size that cannot split the model is reported as such before
  // any complaint about the device count.
  const int64_t devices = plan.cluster.world_size();
  if (devices % p.model_parallel_size() != 0)
    return fail(PlanRule::devices_divisible_by_model_parallel, [&] {
      return fmt::format("tensor-model-parallel-size={} × pipeline-model-parallel-size={} = {} does not divide the "
                         "{} devices (nodes={} × devices-per-node={})",
                         t, p.pipeline_parallel, p.model_parallel_size(), devices, plan.cluster.nodes,
                         plan.cluster.devices_per_node);
    });
  // data-parallel-size is derived, but a program may set anything: multiply without wrapping.
  const std::optional<int64_t> world = checked_multiply(p.model_parallel_size(), p.data_parallel);
  if (!world || *world != devices)
    return fail(PlanRule::world_size_matches, [&] {
      return fmt::format("data-parallel-size={} × tensor-model-parallel-size={} × pipeline-model-parallel-size={} = "
                         "{} but the cluster has {} devices",
                         p.data_parallel, t, p.pipeline_parallel,
                         world ? fmt::format("{}", *world) : std::string("more than int64 holds"), devices);
    });

  // A mixed cluster's groups hold whole pipeline stages (tp × dp consecutive ranks each), so that
  // no tensor- or data-parallel group mixes two kinds of device (its slowest member would set the
  // pace of every collective, and Megatron users never build such groups).
  if (plan.cluster.mixed()) {
    const int64_t stage_ranks = t * p.data_parallel;
    int64_t first_rank = 0;
    for (size_t g = 0; g < plan.cluster.groups.size(); ++g) {
      const DeviceGroup& group = plan.cluster.groups[g];
      if (group.devices() % stage_ranks != 0)
        return fail(PlanRule::device_group_straddles_stage, [&] {
          return fmt::format("cluster.groups[{}] ({} node(s) × {} devices, profile {}) holds ranks {}–{}, but each "
                             "pipeline stage is tensor-model-parallel-size={} × data-parallel-size={} = {} "
                             "consecutive ranks: a tensor- or data-parallel group would straddle two kinds of "
                             "device; give every group a multiple of {} devices, or choose tp × dp dividing each "
                             "group's devices",
                             g, group.nodes, group.devices_per_node, group.profile, first_rank,
                             first_rank + group.devices() - 1, t, p.data_parallel, stage_ranks, stage_ranks);
        });
      first_rank += group.devices();
    }
  }

  const int64_t batch = plan.training.global_batch_size;
  const int64_t per_step = p.micro_batch_size * p.data_parallel;  // both bounded above: no overflow
  if (batch % per_step != 0)
    return fail(PlanRule::batch_divisible, [&] {
      return fmt::format("global-batch-size={} is not divisible by micro-batch-size={} × data-parallel-size={} = {}",
                         batch, p.micro_batch_size, p.data_parallel, per_step);
    });
  if (p.schedule == Schedule::interleaved && (batch / per_step) % p.pipeline_parallel != 0)
    return fail(PlanRule::interleaved_microbatches_divisible_by_pp, [&] {
      return fmt::format("schedule=interleaved needs the {} microbatches per step (global-batch-size={} / "
                         "(micro-batch-size={} × data-parallel-size={})) to be a multiple of "
                         "pipeline-model-parallel-size={}",
                         batch / per_step, batch, p.micro_batch_size, p.data_parallel, p.pipeline_parallel);
    });
  return true;
}

constexpr std::array<std::string_view, kPlanRuleCount> kRuleDescriptions = {
    "tp, pp and micro-batch size must be positive",
    "num-attention-heads % tp != 0",
    "num-query-groups % tp != 0",
    "ffn-hidden-size % tp != 0",
    "padded-vocab-size % tp != 0",
    "sequence parallel needs tp > 1",
    "seq-length % tp != 0 with sequence parallel",
    "tp-comm-overlap without sequence parallel",
    "overlap-param-gather without the distributed optimizer",
    "overlap-param-gather without overlap-grad-reduce",
    "ddp-bucket-size not positive",
    "ddp-bucket-size without overlap-grad-reduce",
    "two ways of giving the layer split",
    "two ways of giving the virtual stages",
    "uneven first/last stage needs pp > 1",
    "pipeline-layer-split has the wrong length",
    "layer split: a stage's count or the sum is wrong",
    "uneven split: the layers do not divide",
    "num-layers % pp != 0",
    "virtual stages without the interleaved schedule",
    "interleaved schedule needs pp > 1",
    "interleaved schedule without virtual stages",
    "layers per virtual stage do not divide layers per stage",
    "interleaved schedule with 1 virtual stage",
    "devices % (tp × pp) != 0",
    "dp × tp × pp != devices",
    "mixed cluster: a device group splits a pipeline stage",
    "global batch % (micro batch × dp) != 0",
    "interleaved: microbatches % pp != 0",
};

}  // namespace

std::string_view describe(PlanRule rule) { return kRuleDescriptions[size_t(rule)]; }

void Plan::validate() const {
  model.validate();
  training.validate();
  cluster.validate();
  check_parallel_rules(*this, [](PlanRule, auto&& message) -> bool { throw InvalidInput(message()); });
}

std::optional<PlanRule> Plan::violated_rule() const {
  std::optional<PlanRule> violated;
  check_parallel_rules(*this, [&](PlanRule rule, auto&&) {
    violated = rule;
    return false;
  });
  return violated;
}

int64_t Plan::microbatches() const {
  return training.global_batch_size / (parallel.micro_batch_size * parallel.data_parallel);
}

ModelSpec Plan::trained_model() const {
  ModelSpec trained = model;
  trained.padded_vocab_size = padded_vocab_size();
  return trained;
}

}  // namespace loom::core
