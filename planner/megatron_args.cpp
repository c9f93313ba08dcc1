#include "planner/megatron_args.hpp"

#include <fmt/format.h>

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

}  // namespace

std::vector<std::string> megatron_arguments(const core::Plan& plan) {
  const core::ModelSpec& m = plan.model;
  const core::TrainSpec& t = plan.training;
  const core::ParallelPlan& p = plan.parallel;
  std::vector<std::string> args;
  auto flag = [&](std::string name) { args.push_back(std::move(name)); };
  auto value = [&](std::string name, auto v) {
    args.push_back(std::move(name));
    args.push_back(fmt::format("{}", v));
  };
  value("--tensor-model-parallel-size", p.tensor_parallel);
  value("--pipeline-model-parallel-size", p.pipeline_parallel);
  if (p.layers_per_virtual_stage) value("--num-layers-per-virtual-pipeline-stage", *p.layers_per_virtual_stage);
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

std::string megatron_command(const core::Plan& plan) {
  std::string out;
  out += fmt::format("# Megatron-LM arguments for {} on {} node(s) x {} devices (exported by loom)\n",
                     plan.model.name.empty() ? "the model" : plan.model.name, plan.cluster.nodes,
                     plan.cluster.devices_per_node);
  out += vocabulary_note(plan);
  if (plan.parallel.tp_comm_overlap)
    out += "# tp-comm-overlap: Megatron-Core sets it up with Transformer Engine's userbuffers; Transformer Engine "
           "must be installed.\n";
  if (plan.parallel.schedule == core::Schedule::gpipe)
    out += "# Schedule: Megatron-LM has no GPipe schedule; it will run 1F1B (less activation memory, same bubble).\n";
  out += fmt::format("torchrun --nnodes {} --nproc-per-node {} pretrain_gpt.py", plan.cluster.nodes,
                     plan.cluster.devices_per_node);
  const std::vector<std::string> args = megatron_arguments(plan);
  for (size_t i = 0; i < args.size(); ++i) {
    const bool has_value = i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0;
    out += " \\\n    " + args[i];
    if (has_value) out += " " + args[++i];
  }
  out += "\n";
  return out;
}

}  // namespace loom::plan
