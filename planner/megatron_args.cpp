#include "planner/megatron_args.hpp"

#include "core/error.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <optional>

namespace loom::plan {
namespace {

// Megatron reads the vocabulary from the tokenizer and pads it to a multiple of
// --make-vocab-size-divisible-by × tp; it has no flag for the padded size itself. A pinned size P
// comes out of that rule for a divisor d whenever d·tp divides P and rounding the tokenizer's
// vocabulary up lands on P. Megatron's usual 128 when it can (for an unknown tokenizer: when
// 128·tp divides P), else the smallest such d, else P / tp, which pads any tokenizer of at most P
// tokens to exactly P.
int64_t divisor_reproducing(const core::Plan& plan) {
  const core::ModelSpec& m = plan.model;
  if (!m.padded_vocab_size) return m.make_vocab_size_divisible_by;
  const int64_t padded = *m.padded_vocab_size, tp = plan.parallel.tensor_parallel;
  const int64_t largest = padded / tp;  // a valid plan has tp dividing the pin
  core::ModelSpec probe = m;
  probe.padded_vocab_size.reset();
  probe.vocab_size = m.vocab_size.value_or(padded);  // unknown: the largest that P holds
  auto reproduces = [&](int64_t d) {
    probe.make_vocab_size_divisible_by = d;
    return largest % d == 0 && core::padded_vocab_size(probe, tp) == padded;
  };
  if (reproduces(core::kDefaultMakeVocabSizeDivisibleBy)) return core::kDefaultMakeVocabSizeDivisibleBy;
  if (!m.vocab_size) return largest;
  for (int64_t d = 1; d < largest; ++d)
    if (reproduces(d)) return d;
  return largest;
}

std::string vocabulary_note(const core::Plan& plan) {
  const core::ModelSpec& m = plan.model;
  const int64_t padded = plan.padded_vocab_size(), tp = plan.parallel.tensor_parallel;
  const int64_t divisor = divisor_reproducing(plan);
  std::string note = "# Vocabulary: Megatron reads it from the tokenizer you pass (--tokenizer-type, --vocab-file ...)\n";
  if (m.vocab_size)
    return note + fmt::format("# and pads its {} tokens to {} rows, a multiple of --make-vocab-size-divisible-by {} x "
                              "tensor-model-parallel-size {}, as Loom planned.\n",
                              *m.vocab_size, padded, divisor, tp);
  const int64_t multiple = divisor * tp;
  note += fmt::format("# and pads it to a multiple of --make-vocab-size-divisible-by {} x tensor-model-parallel-size {}: "
                      "the plan's\n# padded-vocab-size {} for a tokenizer of {} to {} tokens",
                      divisor, tp, padded, padded - multiple + 1, padded);
  if (multiple != padded)
    note += fmt::format(" (--make-vocab-size-divisible-by {} gives it for any tokenizer of at most {})", padded / tp, padded);
  return note + ".\n";
}


// Why Megatron-LM's flags cannot say this split (it holds pp × v entries, one per virtual stage):
// they give every rank but the first and last the same layers, and split each rank's layers evenly
// over its chunks (get_num_layers_to_build in megatron/core/transformer/transformer_block.py).
std::string unsayable_reason(const core::Plan& plan) {
  const std::vector<int64_t> chunks = plan.virtual_stage_layers();
  const std::vector<int64_t> ranks = plan.pipeline_rank_layers();
  const size_t pp = ranks.size(), v = chunks.size() / pp;
  for (size_t r = 0; r < pp; ++r)
    for (size_t c = 1; c < v; ++c)
      if (chunks[c * pp + r] != chunks[r])
        return fmt::format("pipeline rank {}'s {} virtual stages hold different layer counts ({} and {}), and Megatron "
                           "splits each rank's layers evenly over its virtual stages",
                           r, v, chunks[r], chunks[c * pp + r]);
  for (size_t r = 2; r + 1 < pp; ++r)
    if (ranks[r] != ranks[1])
      return fmt::format("pipeline ranks 1 and {} hold {} and {} layers, and Megatron gives every rank but the first "
                         "and the last the same number",
                         r, ranks[1], ranks[r]);
  if (ranks.front() == 0 || ranks.back() == 0)
    return fmt::format("the {} pipeline rank holds no transformer layer, which decoder-{}-pipeline-num-layers cannot "
                       "say (it takes 1 or more) and the account-for-embedding/loss form only gives with one layer "
                       "per virtual stage",
                       ranks.front() == 0 ? "first" : "last", ranks.front() == 0 ? "first" : "last");
  return "no combination of decoder-first/last-pipeline-num-layers and account-for-embedding/loss-in-pipeline-split "
         "gives these layer counts";
}

}  // namespace

std::string megatron_pipeline_layout(const core::Plan& plan) {
  const std::vector<int64_t> layers = plan.virtual_stage_layers();
  std::string layout;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (i) layout += "|";
    if (i == 0) layout += "E";
    if (layers[i] == 1) layout += "t";
    if (layers[i] > 1) layout += fmt::format("t*{}", layers[i]);
    if (i + 1 == layers.size()) layout += "L";
  }
  return layout;
}

core::ParallelPlan megatron_layer_split(const core::Plan& plan) {
  const core::ParallelPlan& p = plan.parallel;
  if (p.pipeline_layer_split.empty()) return p;  // already in Megatron's terms
  const std::vector<int64_t> wanted = plan.virtual_stage_layers();
  const std::vector<int64_t> ranks = plan.pipeline_rank_layers();
  const int64_t v = plan.virtual_stages();
  core::ParallelPlan base = p;
  base.pipeline_layer_split.clear();
  // Megatron requires --num-virtual-stages-per-pipeline-rank with uneven first/last stages, and it
  // reads the same with the other forms.
  if (v > 1) base.virtual_stages_per_rank = v;
  // Each of Megatron's forms, fewest flags first; the first that gives the very layers wanted is
  // what the plan means in Megatron's terms (core's rules are Megatron's, so a form it accepts
  // Megatron accepts).
  std::vector<core::ParallelPlan> forms;
  forms.push_back(base);
  for (const auto& [embedding, loss] : {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    core::ParallelPlan form = base;
    form.account_for_embedding = embedding;
    form.account_for_loss = loss;
    forms.push_back(form);
  }
  for (const auto& [first, last] : {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    core::ParallelPlan form = base;
    if (first) form.first_stage_layers = ranks.front();
    if (last) form.last_stage_layers = ranks.back();
    forms.push_back(form);
  }
  for (const core::ParallelPlan& form : forms) {
    core::Plan probe = plan;
    probe.parallel = form;
    if (!probe.violated_rule() && probe.virtual_stage_layers() == wanted) return form;
  }
  throw InvalidInput("pipeline-layer-split={} cannot be said in Megatron-LM's flags: {}; Megatron-Core's "
                     "--pipeline-model-parallel-layout \"{}\" (experimental) would express it",
                     p.pipeline_layer_split, unsayable_reason(plan), megatron_pipeline_layout(plan));
}

std::vector<std::string> megatron_arguments(const core::Plan& plan) {
  const core::ModelSpec& m = plan.model;
  const core::TrainSpec& t = plan.training;
  const core::ParallelPlan p = megatron_layer_split(plan);
  std::vector<std::string> args;
  auto flag = [&](std::string name) { args.push_back(std::move(name)); };
  auto value = [&](std::string name, auto v) {
    args.push_back(std::move(name));
    args.push_back(fmt::format("{}", v));
  };
  value("--tensor-model-parallel-size", p.tensor_parallel);
  value("--pipeline-model-parallel-size", p.pipeline_parallel);
  if (p.layers_per_virtual_stage) value("--num-layers-per-virtual-pipeline-stage", *p.layers_per_virtual_stage);
  if (p.virtual_stages_per_rank) value("--num-virtual-stages-per-pipeline-rank", *p.virtual_stages_per_rank);
  if (p.first_stage_layers) value("--decoder-first-pipeline-num-layers", *p.first_stage_layers);
  if (p.last_stage_layers) value("--decoder-last-pipeline-num-layers", *p.last_stage_layers);
  if (p.account_for_embedding) flag("--account-for-embedding-in-pipeline-split");
  if (p.account_for_loss) flag("--account-for-loss-in-pipeline-split");
  if (p.sequence_parallel) flag("--sequence-parallel");
  if (p.distributed_optimizer) flag("--use-distributed-optimizer");
  // Always given: Megatron-Core's own default is `auto`, which picks by what is installed, and a
  // plan means one backend.
  value("--attention-backend", core::to_string(p.attention_backend));
  if (p.overlap_grad_reduce) flag("--overlap-grad-reduce");
  if (p.overlap_param_gather) flag("--overlap-param-gather");
  if (p.tp_comm_overlap) flag("--tp-comm-overlap");
  if (p.ddp_bucket_size) value("--ddp-bucket-size", *p.ddp_bucket_size);
  if (p.recompute == core::Recompute::selective) value("--recompute-granularity", "selective");
  if (p.recompute == core::Recompute::full) {
    value("--recompute-granularity", "full");
    value("--recompute-method", "uniform");
    value("--recompute-num-layers", 1);
  }
  value("--micro-batch-size", p.micro_batch_size);
  value("--global-batch-size", t.global_batch_size);
  value("--num-layers", m.num_layers);
  value("--hidden-size", m.hidden_size);
  value("--num-attention-heads", m.num_attention_heads);
  if (m.query_groups() != m.num_attention_heads) {
    flag("--group-query-attention");
    value("--num-query-groups", m.query_groups());
  }
  value("--ffn-hidden-size", m.ffn_hidden_size);
  value("--make-vocab-size-divisible-by", divisor_reproducing(plan));
  value("--seq-length", m.seq_length);
  value("--max-position-embeddings", m.seq_length);
  if (m.activation == core::Activation::swiglu) flag("--swiglu");
  if (m.normalization == core::Normalization::rmsnorm) value("--normalization", "RMSNorm");
  if (m.position_embedding == core::PositionEmbedding::rope) {
    value("--position-embedding-type", "rope");
    value("--rotary-base", m.rotary_base);
  }
  if (!m.add_bias_linear) flag("--disable-bias-linear");
  if (m.untie_embeddings_and_output_weights) flag("--untie-embeddings-and-output-weights");
  if (t.dtype == core::DType::bf16) flag("--bf16");
  if (t.dtype == core::DType::fp16) flag("--fp16");
  value("--lr", t.lr);
  value("--min-lr", t.min_lr);
  value("--lr-decay-style", "cosine");
  value("--lr-warmup-iters", t.lr_warmup_iters);
  value("--train-iters", t.train_iters);
  value("--weight-decay", t.weight_decay);
  value("--clip-grad", t.clip_grad);
  value("--adam-beta1", t.adam_beta1);
  value("--adam-beta2", t.adam_beta2);
  value("--adam-eps", t.adam_eps);
  value("--seed", t.seed);
  return args;
}

namespace {

// "0-1" or "3" (ASCII: the export is a shell script).
std::string span_text(int64_t first, int64_t last) {
  return first == last ? fmt::format("{}", first) : fmt::format("{}-{}", first, last);
}

std::string split_note(const core::Plan& plan) {
  if (plan.even_layer_split()) return "";
  std::string note = fmt::format("# Uneven pipeline split: transformer layers per pipeline rank {}",
                                 fmt::join(plan.pipeline_rank_layers(), ", "));
  if (plan.virtual_stages() > 1)
    note += fmt::format(" (per virtual stage, in model order: {})", fmt::join(plan.virtual_stage_layers(), ", "));
  return note + ".\n";
}

// Megatron has no notion of kinds of device: it places ranks by node rank (torchrun --node-rank),
// tensor rank fastest, then data, then pipeline, as Loom's plan does. So the plan's placement holds
// exactly when each group's hosts take the node ranks the plan gives them; the export says which,
// rather than refusing a plan Megatron runs as it is.
std::string mixed_cluster_note(const core::Plan& plan) {
  if (!plan.cluster.mixed()) return "";
  const std::vector<int64_t> stage_groups = plan.pipeline_rank_groups();
  std::string note = "# Mixed cluster: Megatron-LM does not know device kinds; it places ranks by node rank (tensor "
                     "rank fastest, then data,\n# then pipeline), so start each kind of host with these --node-rank "
                     "values (hostfile order):\n";
  int64_t node = 0, rank = 0;
  const std::vector<core::DeviceGroup> groups = plan.cluster.device_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    int64_t first_stage = -1, last_stage = -1;
    for (size_t s = 0; s < stage_groups.size(); ++s)
      if (stage_groups[s] == int64_t(g)) {
        if (first_stage < 0) first_stage = int64_t(s);
        last_stage = int64_t(s);
      }
    note += fmt::format("#   --node-rank {} on {} hosts: ranks {}, pipeline stage(s) {}\n",
                        span_text(node, node + groups[g].nodes - 1), groups[g].profile,
                        span_text(rank, rank + groups[g].devices() - 1),
                        first_stage < 0 ? std::string("none") : span_text(first_stage, last_stage));
    node += groups[g].nodes;
    rank += groups[g].devices();
  }
  return note;
}

}  // namespace

std::string megatron_command(const core::Plan& plan) {
  const std::vector<std::string> args = megatron_arguments(plan);  // refuses a split Megatron cannot say
  std::string out;
  out += fmt::format("# Megatron-LM arguments for {} on {} node(s) x {} devices (exported by loom)\n",
                     plan.model.name.empty() ? "the model" : plan.model.name, plan.cluster.nodes,
                     plan.cluster.devices_per_node);
  out += vocabulary_note(plan);
  out += split_note(plan);
  out += mixed_cluster_note(plan);
  if (plan.parallel.tp_comm_overlap)
    out += "# tp-comm-overlap: Megatron-Core sets it up with Transformer Engine's userbuffers; Transformer Engine "
           "must be installed.\n";
  if (plan.parallel.schedule == core::Schedule::gpipe)
    out += "# Schedule: Megatron-LM has no GPipe schedule; it will run 1F1B (less activation memory, same bubble).\n";
  out += fmt::format("torchrun --nnodes {} --nproc-per-node {} pretrain_gpt.py", plan.cluster.nodes,
                     plan.cluster.devices_per_node);
  for (size_t i = 0; i < args.size(); ++i) {
    const bool has_value = i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0;
    out += " \\\n    " + args[i];
    if (has_value) out += " " + args[++i];
  }
  out += "\n";
  return out;
}

}  // namespace loom::plan
