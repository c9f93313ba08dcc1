#include "core/plan.hpp"

#include "core/checked_arithmetic.hpp"
#include "core/error.hpp"
#include "core/limits.hpp"

#include <algorithm>
#include <array>
#include <fmt/ranges.h>

namespace loom::core {
namespace {

// The rules are Megatron-LM's (megatron/training/arguments.py and core/parallel_state.py). They
// are written once, here: validate() turns the first violation into an error message naming each
// field the way plan.json spells it, while the planner only asks which rule failed, without
// paying for the message. `fail(rule, message)` receives the message as a callable.
// Megatron-LM's rules for splitting the layers over pipeline ranks and their virtual chunks
// (megatron/training/arguments.py, megatron/core/transformer/transformer_block.py), and Loom's
// general pipeline-layer-split. Every way of saying the split is checked here, so that
// Plan::virtual_stage_layers can assume a valid one.
template <typename Fail>
bool check_pipeline_split(const Plan& plan, Fail&& fail) {
  const ParallelPlan& p = plan.parallel;
  const int64_t layers = plan.model.num_layers;
  const int64_t pp = p.pipeline_parallel;
  const bool interleaved = p.schedule == Schedule::interleaved;
  const bool split = !p.pipeline_layer_split.empty();
  const bool first_last = p.first_stage_layers || p.last_stage_layers;
  const bool accounts = p.account_for_embedding || p.account_for_loss;
  const int64_t accounted = layers + int64_t(p.account_for_embedding) + int64_t(p.account_for_loss);
  const auto accounted_text = [&] {
    return fmt::format("num-layers={}{}{}", layers, p.account_for_embedding ? " + 1 (the embedding)" : "",
                       p.account_for_loss ? " + 1 (the loss)" : "");
  };

  if (split && (first_last || accounts))
    return fail(PlanRule::layer_split_conflict, [&] {
      return fmt::format("pipeline-layer-split={} gives every stage's layers and cannot be combined with {}; "
                         "remove one",
                         p.pipeline_layer_split,
                         first_last ? "decoder-first/last-pipeline-num-layers"
                                    : "account-for-embedding/loss-in-pipeline-split");
    });
  if (first_last && accounts)
    return fail(PlanRule::layer_split_conflict, [&] {
      return std::string("decoder-first/last-pipeline-num-layers cannot be combined with "
                         "account-for-embedding/loss-in-pipeline-split (Megatron-LM refuses both); remove one");
    });
  if (!interleaved && (p.layers_per_virtual_stage || p.virtual_stages_per_rank))
    return fail(PlanRule::virtual_stages_need_interleaved, [&] {
      return p.layers_per_virtual_stage
                 ? fmt::format("num-layers-per-virtual-pipeline-stage={} is only used with schedule=interleaved "
                               "(schedule is {})",
                               *p.layers_per_virtual_stage, to_string(p.schedule))
                 : fmt::format("num-virtual-stages-per-pipeline-rank={} is only used with schedule=interleaved "
                               "(schedule is {})",
                               *p.virtual_stages_per_rank, to_string(p.schedule));
    });
  if (p.layers_per_virtual_stage && p.virtual_stages_per_rank)
    return fail(PlanRule::virtual_stages_conflict, [&] {
      return fmt::format("num-layers-per-virtual-pipeline-stage={} and num-virtual-stages-per-pipeline-rank={} "
                         "both give the virtual stages; give one",
                         *p.layers_per_virtual_stage, *p.virtual_stages_per_rank);
    });
  if (split && p.layers_per_virtual_stage)
    return fail(PlanRule::virtual_stages_conflict, [&] {
      return fmt::format("num-layers-per-virtual-pipeline-stage={} cannot be used with pipeline-layer-split, which "
                         "gives each virtual stage's layers (pipeline-model-parallel-size × virtual stages "
                         "entries); remove it",
                         *p.layers_per_virtual_stage);
    });
  if (first_last && p.layers_per_virtual_stage)
    return fail(PlanRule::virtual_stages_conflict, [&] {
      return std::string("decoder-first/last-pipeline-num-layers with schedule=interleaved needs "
                         "num-virtual-stages-per-pipeline-rank, not num-layers-per-virtual-pipeline-stage "
                         "(as Megatron-LM)");
    });
  if (first_last && pp < 2)
    return fail(PlanRule::uneven_split_needs_pp, [&] {
      return fmt::format("decoder-first/last-pipeline-num-layers need pipeline-model-parallel-size > 1 (it is {})",
                         pp);
    });

  // The virtual stages per pipeline rank.
  int64_t v = 1;
  if (interleaved) {
    if (pp < 2)
      return fail(PlanRule::interleaved_needs_pp, [&] {
        return fmt::format("schedule=interleaved needs pipeline-model-parallel-size > 1 (it is {})", pp);
      });
    if (split) {
      if (int64_t(p.pipeline_layer_split.size()) % pp != 0)
        return fail(PlanRule::layer_split_length, [&] {
          return fmt::format("pipeline-layer-split has {} entries; with schedule=interleaved it lists every virtual "
                             "stage: pipeline-model-parallel-size={} × the virtual stages per rank",
                             p.pipeline_layer_split.size(), pp);
        });
      v = int64_t(p.pipeline_layer_split.size()) / pp;
      if (p.virtual_stages_per_rank && *p.virtual_stages_per_rank != v)
        return fail(PlanRule::layer_split_length, [&] {
          return fmt::format("pipeline-layer-split has {} entries, {} virtual stages per rank with "
                             "pipeline-model-parallel-size={}, but num-virtual-stages-per-pipeline-rank={}",
                             p.pipeline_layer_split.size(), v, pp, *p.virtual_stages_per_rank);
        });
    } else if (p.virtual_stages_per_rank) {
      v = *p.virtual_stages_per_rank;
      if (v <= 0 || v > limits::kMaxLayers)
        return fail(PlanRule::virtual_stage_divides_stage, [&] {
          return fmt::format("num-virtual-stages-per-pipeline-rank={} must be an integer from 2 to the layers per "
                             "pipeline stage",
                             v);
        });
    } else if (p.layers_per_virtual_stage) {
      if (accounted % pp != 0)
        return fail(accounts ? PlanRule::uneven_layers_not_divisible : PlanRule::layers_divisible_by_pp, [&] {
          return accounts ? fmt::format("{} = {} is not divisible by pipeline-model-parallel-size={}",
                                        accounted_text(), accounted, pp)
                          : fmt::format("pipeline-model-parallel-size={} does not divide num-layers={}", pp, layers);
        });
      const int64_t per_stage = accounted / pp;
      const int64_t per_virtual = *p.layers_per_virtual_stage;
      if (per_virtual <= 0 || per_stage % per_virtual != 0)
        return fail(PlanRule::virtual_stage_divides_stage, [&] {
          return fmt::format("num-layers-per-virtual-pipeline-stage={} does not divide the {} layers per pipeline "
                             "stage ({} / pipeline-model-parallel-size={})",
                             per_virtual, per_stage, accounts ? accounted_text() : fmt::format("num-layers={}", layers),
                             pp);
        });
      v = per_stage / per_virtual;
    } else {
      return fail(PlanRule::interleaved_needs_virtual_stages, [&] {
        return std::string("schedule=interleaved needs num-layers-per-virtual-pipeline-stage, "
                           "num-virtual-stages-per-pipeline-rank, or a pipeline-layer-split listing every virtual "
                           "stage");
      });
    }
    if (v < 2)
      return fail(PlanRule::interleaved_needs_two_virtual_stages, [&] {
        if (p.layers_per_virtual_stage)
          return fmt::format("num-layers-per-virtual-pipeline-stage={} leaves 1 virtual stage per pipeline rank; "
                             "schedule=interleaved needs at least 2 (use a value below {} or schedule=1f1b)",
                             *p.layers_per_virtual_stage, accounted / pp);
        return fmt::format("schedule=interleaved needs at least 2 virtual stages per pipeline rank (this plan has "
                           "{}); use schedule=1f1b",
                           v);
      });
  } else if (split && int64_t(p.pipeline_layer_split.size()) != pp) {
    return fail(PlanRule::layer_split_length, [&] {
      return fmt::format("pipeline-layer-split has {} entries; expected one per pipeline stage "
                         "(pipeline-model-parallel-size={})",
                         p.pipeline_layer_split.size(), pp);
    });
  }

  if (split) {
    const std::vector<int64_t>& counts = p.pipeline_layer_split;
    int64_t sum = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      const bool end_stage = i == 0 || i + 1 == counts.size();
      if (counts[i] < 0 || counts[i] > layers || (counts[i] == 0 && !end_stage))
        return fail(PlanRule::layer_split_counts, [&] {
          return fmt::format("pipeline-layer-split[{}]={} must be from {} to num-layers={} (only the first and the "
                             "last virtual stage, which hold the embedding and the loss, may have no layers)",
                             i, counts[i], end_stage ? 0 : 1, layers);
        });
      sum += counts[i];  // each at most kMaxLayers, at most kMaxLayers² · ... entries: no overflow
    }
    if (sum != layers)
      return fail(PlanRule::layer_split_counts, [&] {
        return fmt::format("pipeline-layer-split={} sums to {} layers; it must sum to num-layers={}", counts, sum,
                           layers);
      });
    return true;
  }
  if (first_last) {
    const int64_t first = p.first_stage_layers.value_or(0), last = p.last_stage_layers.value_or(0);
    // Not a structured binding: clang (the fuzz build) cannot capture one in the message's lambda.
    for (const auto& given : {std::pair{p.first_stage_layers, "decoder-first-pipeline-num-layers"},
                              std::pair{p.last_stage_layers, "decoder-last-pipeline-num-layers"}})
      if (given.first && (*given.first < 1 || *given.first > layers))
        return fail(PlanRule::layer_split_counts, [&] {
          return fmt::format("{}={} must be from 1 to num-layers={}", given.second, *given.first, layers);
        });
    const int64_t rest = layers - first - last;
    const int64_t rest_ranks = pp - int64_t(bool(p.first_stage_layers)) - int64_t(bool(p.last_stage_layers));
    if (rest < 0 || (rest_ranks == 0 && rest != 0))
      return fail(PlanRule::layer_split_counts, [&] {
        return fmt::format("decoder-first/last-pipeline-num-layers ({} and {}) leave {} of num-layers={} for the "
                           "other {} pipeline stage(s)",
                           first, last, rest, layers, rest_ranks);
      });
    if (rest_ranks > 0 && (rest % rest_ranks != 0 || rest / rest_ranks == 0))
      return fail(rest % rest_ranks != 0 ? PlanRule::uneven_layers_not_divisible : PlanRule::layer_split_counts, [&] {
        return fmt::format("the {} layers left by decoder-first/last-pipeline-num-layers {} over the other {} "
                           "pipeline stage(s) (each needs the same number, at least 1)",
                           rest, rest % rest_ranks != 0 ? "do not split evenly" : "are too few", rest_ranks);
      });
    const int64_t middle = rest_ranks > 0 ? rest / rest_ranks : 0;
    if (v > 1 && (first % v != 0 || last % v != 0 || middle % v != 0))
      return fail(PlanRule::uneven_layers_not_divisible, [&] {
        return fmt::format("with {} virtual stages per pipeline rank each rank's layers must split evenly over them: "
                           "first stage {}, last stage {}, the others {} each",
                           v, first, last, middle);
      });
    return true;
  }
  if (accounts) {
    if (accounted % (pp * v) != 0)
      return fail(PlanRule::uneven_layers_not_divisible, [&] {
        return fmt::format("{} = {} is not divisible by pipeline-model-parallel-size={}{}", accounted_text(),
                           accounted, pp, v > 1 ? fmt::format(" × {} virtual stages", v) : std::string());
      });
    return true;
  }
  if (layers % pp != 0)
    return fail(PlanRule::layers_divisible_by_pp, [&] {
      return fmt::format("pipeline-model-parallel-size={} does not divide num-layers={}", pp, layers);
    });
  if (v > 1 && (layers / pp) % v != 0)
    return fail(PlanRule::virtual_stage_divides_stage, [&] {
      return fmt::format("num-virtual-stages-per-pipeline-rank={} does not divide the {} layers per pipeline stage "
                         "(num-layers={} / pipeline-model-parallel-size={})",
                         v, layers / pp, layers, pp);
    });
  return true;
}

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
  if (!check_pipeline_split(plan, fail)) return false;

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

int64_t Plan::virtual_stages() const {
  const ParallelPlan& p = parallel;
  if (p.schedule != Schedule::interleaved || p.pipeline_parallel <= 0) return 1;
  if (!p.pipeline_layer_split.empty()) return std::max<int64_t>(1, int64_t(p.pipeline_layer_split.size()) / p.pipeline_parallel);
  if (p.virtual_stages_per_rank) return std::max<int64_t>(1, *p.virtual_stages_per_rank);
  if (!p.layers_per_virtual_stage || *p.layers_per_virtual_stage <= 0) return 1;
  const int64_t accounted = model.num_layers + int64_t(p.account_for_embedding) + int64_t(p.account_for_loss);
  return std::max<int64_t>(1, accounted / p.pipeline_parallel / *p.layers_per_virtual_stage);
}

std::vector<int64_t> Plan::virtual_stage_layers() const {
  const ParallelPlan& p = parallel;
  if (!p.pipeline_layer_split.empty()) return p.pipeline_layer_split;
  const int64_t pp = p.pipeline_parallel, v = virtual_stages(), layers = model.num_layers;
  std::vector<int64_t> counts(size_t(pp * v));
  if (p.first_stage_layers || p.last_stage_layers) {
    const int64_t rest_ranks = pp - int64_t(bool(p.first_stage_layers)) - int64_t(bool(p.last_stage_layers));
    const int64_t rest = layers - p.first_stage_layers.value_or(0) - p.last_stage_layers.value_or(0);
    const int64_t middle = rest_ranks > 0 ? rest / rest_ranks : 0;
    for (int64_t r = 0; r < pp; ++r) {
      int64_t on_rank = middle;
      if (r == 0 && p.first_stage_layers) on_rank = *p.first_stage_layers;
      if (r == pp - 1 && p.last_stage_layers) on_rank = *p.last_stage_layers;
      for (int64_t c = 0; c < v; ++c) counts[size_t(c * pp + r)] = on_rank / v;
    }
    return counts;
  }
  const int64_t accounted = layers + int64_t(p.account_for_embedding) + int64_t(p.account_for_loss);
  std::fill(counts.begin(), counts.end(), accounted / (pp * v));
  if (p.account_for_embedding) counts.front() -= 1;
  if (p.account_for_loss) counts.back() -= 1;
  return counts;
}

std::vector<int64_t> Plan::pipeline_rank_layers() const {
  const std::vector<int64_t> chunks = virtual_stage_layers();
  const int64_t pp = parallel.pipeline_parallel;
  std::vector<int64_t> ranks(size_t(pp), 0);
  for (size_t i = 0; i < chunks.size(); ++i) ranks[i % size_t(pp)] += chunks[i];
  return ranks;
}

bool Plan::even_layer_split() const {
  if (!parallel.has_layer_split_rule()) return true;
  const std::vector<int64_t> chunks = virtual_stage_layers();
  return std::all_of(chunks.begin(), chunks.end(), [&](int64_t c) { return c == chunks.front(); });
}

std::vector<int64_t> Plan::pipeline_rank_groups() const {
  const int64_t pp = parallel.pipeline_parallel;
  std::vector<int64_t> groups(size_t(pp), 0);
  if (!cluster.mixed()) return groups;
  const int64_t stage_ranks = parallel.tensor_parallel * parallel.data_parallel;
  for (int64_t r = 0; r < pp; ++r) groups[size_t(r)] = cluster.group_of_rank(r * stage_ranks);
  return groups;
}

}  // namespace loom::core
