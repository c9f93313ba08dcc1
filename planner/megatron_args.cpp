#include "planner/megatron_args.hpp"

#include <fmt/format.h>

namespace loom::plan {

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
  if (m.num_query_groups != m.num_attention_heads) {
    flag("--group-query-attention");
    value("--num-query-groups", m.num_query_groups);
  }
  value("--ffn-hidden-size", m.ffn_hidden_size);
  value("--seq-length", m.seq_length);
  value("--max-position-embeddings", m.seq_length);
  if (m.activation == core::Activation::swiglu) flag("--swiglu");
  if (m.normalization == core::Normalization::rmsnorm) value("--normalization", "RMSNorm");
  if (m.position_embedding == core::PositionEmbedding::rope) value("--position-embedding-type", "rope");
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
  out += fmt::format("# Vocabulary: Loom planned with padded-vocab-size {}; Megatron pads the tokenizer's vocabulary\n"
                     "# itself to a multiple of --make-vocab-size-divisible-by x tensor-model-parallel-size.\n",
                     plan.model.padded_vocab_size);
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
