#include "planner/megatron_plan.hpp"

#include "core/error.hpp"
#include "core/vocabulary.hpp"

#include <fmt/format.h>

#include <cmath>
#include <optional>

namespace loom::plan {
namespace {

class Arguments {
 public:
  explicit Arguments(const MegatronLog& log) : log_(log) {}

  // The printed value, nullopt when absent or None.
  std::optional<std::string> text(const std::string& name) const {
    const auto found = log_.arguments.find(name);
    if (found == log_.arguments.end() || found->second == "None") return std::nullopt;
    return found->second;
  }

  std::optional<int64_t> integer(const std::string& name) const {
    const auto value = text(name);
    if (!value) return std::nullopt;
    const auto parsed = parse_int(*value);
    if (!parsed) bad(name, *value, "a whole number");
    return parsed;
  }

  int64_t required_integer(const std::string& name) const {
    const auto value = integer(name);
    if (!value)
      throw InvalidInput("{}: the arguments block has no value for {} (--{}), which the plan needs", log_.file_name,
                         name, dashed(name));
    return *value;
  }

  std::optional<double> real(const std::string& name) const {
    const auto value = text(name);
    if (!value) return std::nullopt;
    const auto parsed = parse_double(*value);
    if (!parsed) bad(name, *value, "a number");
    return parsed;
  }

  bool flag(const std::string& name) const {
    const auto value = text(name);
    if (!value || *value == "False") return false;
    if (*value == "True") return true;
    bad(name, *value, "True or False");
  }

  [[noreturn]] void bad(const std::string& name, const std::string& value, const char* expected) const {
    throw InvalidInput("{}: argument {} is '{}' in the arguments block; expected {}", log_.file_name, name, value,
                       expected);
  }

  static std::string dashed(std::string name) {
    for (char& c : name)
      if (c == '_') c = '-';
    return name;
  }

 private:
  const MegatronLog& log_;
};

void refuse_unmodelled(const Arguments& args, const std::string& file) {
  for (const char* name : {"context_parallel_size", "expert_model_parallel_size"}) {
    const auto size = args.integer(name);
    if (size && *size > 1)
      throw InvalidInput("{}: the run used {} {}; Loom's plans have no such parallelism, so it cannot be imported",
                         file, name, *size);
  }
  if (args.integer("num_experts"))
    throw InvalidInput("{}: the run trained a mixture of experts (num_experts {}); Loom models dense transformers only",
                       file, *args.integer("num_experts"));
}

}  // namespace

core::Plan plan_from_megatron_arguments(const MegatronLog& log, const MegatronPlanOptions& options) {
  if (log.arguments.empty())
    throw InvalidInput("{}: the log has no arguments block ('------------------------ arguments "
                       "------------------------'), so its plan cannot be rebuilt; give it with --plan",
                       log.file_name);
  const Arguments args(log);
  refuse_unmodelled(args, log.file_name);
  core::Plan plan;
  core::ModelSpec& m = plan.model;
  m.name = options.model_name.empty() ? "megatron import" : options.model_name;
  m.num_layers = args.required_integer("num_layers");
  m.hidden_size = args.required_integer("hidden_size");
  m.num_attention_heads = args.required_integer("num_attention_heads");
  if (args.flag("group_query_attention")) m.num_query_groups = args.required_integer("num_query_groups");
  m.activation = args.flag("swiglu") ? core::Activation::swiglu : core::Activation::gelu;
  // Megatron fills ffn_hidden_size in before printing (4h, or 8h/3 rounded for SwiGLU); older
  // releases print None for the 4h default.
  m.ffn_hidden_size = args.integer("ffn_hidden_size").value_or(4 * m.hidden_size);
  m.seq_length = args.required_integer("seq_length");
  if (const auto norm = args.text("normalization")) {
    if (*norm == "RMSNorm")
      m.normalization = core::Normalization::rmsnorm;
    else if (*norm != "LayerNorm")
      args.bad("normalization", *norm, "LayerNorm or RMSNorm");
  }
  if (const auto position = args.text("position_embedding_type")) {
    if (*position == "rope")
      m.position_embedding = core::PositionEmbedding::rope;
    else if (*position != "learned_absolute")
      args.bad("position_embedding_type", *position, "learned_absolute or rope");
  }
  if (const auto base = args.real("rotary_base")) m.rotary_base = int64_t(std::llround(*base));
  m.untie_embeddings_and_output_weights = args.flag("untie_embeddings_and_output_weights");
  if (args.text("add_bias_linear")) m.add_bias_linear = args.flag("add_bias_linear");
  if (const auto divisor = args.integer("make_vocab_size_divisible_by")) m.make_vocab_size_divisible_by = *divisor;
  // The tokenizer's size comes from its own line, printed after the block; the arguments hold it
  // only for tokenizers without files (NullTokenizer's --vocab-size).
  if (log.tokenizer_vocab_size) {
    m.vocab_size = *log.tokenizer_vocab_size;
  } else if (const auto padded = args.integer("padded_vocab_size")) {
    m.padded_vocab_size = *padded;
  } else if (const auto vocab = args.integer("vocab_size")) {
    m.vocab_size = *vocab;
  } else {
    throw InvalidInput("{}: the log gives no vocabulary size: no '> padded vocab (size: …)' line and no vocab_size in "
                       "the arguments block; give the plan with --plan",
                       log.file_name);
  }

  core::ParallelPlan& p = plan.parallel;
  p.tensor_parallel = args.integer("tensor_model_parallel_size").value_or(1);
  p.pipeline_parallel = args.integer("pipeline_model_parallel_size").value_or(1);
  p.micro_batch_size = args.required_integer("micro_batch_size");
  // Uneven splits: Megatron's first/last and account-for forms, as plan.json has them.
  if (const auto layout = args.text("pipeline_model_parallel_layout"))
    throw InvalidInput("{}: the run split its layers with --pipeline-model-parallel-layout {}, which Loom does not read; "
                       "give the plan (its pipeline-layer-split) with --plan",
                       log.file_name, *layout);
  p.first_stage_layers = args.integer("decoder_first_pipeline_num_layers");
  p.last_stage_layers = args.integer("decoder_last_pipeline_num_layers");
  p.account_for_embedding = args.flag("account_for_embedding_in_pipeline_split");
  p.account_for_loss = args.flag("account_for_loss_in_pipeline_split");
  // The virtual stages as the run gave them; Megatron prints the derived
  // virtual_pipeline_model_parallel_size too, which older releases print alone. With uneven
  // first/last stages Megatron takes them only as num-virtual-stages-per-pipeline-rank.
  const bool first_last = p.first_stage_layers || p.last_stage_layers;
  const auto layers_per_virtual = args.integer("num_layers_per_virtual_pipeline_stage");
  const auto stages_per_rank = args.integer("num_virtual_stages_per_pipeline_rank");
  const auto virtual_stages = args.integer("virtual_pipeline_model_parallel_size");
  if (layers_per_virtual && !first_last) {
    p.layers_per_virtual_stage = *layers_per_virtual;
  } else if (stages_per_rank) {
    p.virtual_stages_per_rank = *stages_per_rank;
  } else if (virtual_stages && *virtual_stages > 1) {
    if (p.has_layer_split_rule())
      p.virtual_stages_per_rank = *virtual_stages;
    else
      p.layers_per_virtual_stage = m.num_layers / (p.pipeline_parallel * *virtual_stages);
  }
  if (p.layers_per_virtual_stage || p.virtual_stages_per_rank) p.schedule = core::Schedule::interleaved;
  p.sequence_parallel = args.flag("sequence_parallel");
  if (const auto granularity = args.text("recompute_granularity")) {
    if (*granularity == "selective")
      p.recompute = core::Recompute::selective;
    else if (*granularity == "full")
      p.recompute = core::Recompute::full;
    else
      args.bad("recompute_granularity", *granularity, "selective, full or None");
  }
  p.distributed_optimizer = args.flag("use_distributed_optimizer");
  p.overlap_grad_reduce = args.flag("overlap_grad_reduce");
  p.overlap_param_gather = args.flag("overlap_param_gather");
  p.tp_comm_overlap = args.flag("tp_comm_overlap");
  if (p.overlap_grad_reduce) p.ddp_bucket_size = args.integer("ddp_bucket_size");
  // attention_backend prints as the enum (AttnBackend.flash); auto picks flash or cuDNN's fused
  // kernel where installed, which Loom models as flash. use_flash_attn is the older switch.
  const std::string backend = args.text("attention_backend").value_or("");
  const bool unfused = backend.ends_with("unfused") || backend.ends_with("local");
  p.attention_backend = args.flag("use_flash_attn") || (!backend.empty() && !unfused) ? core::AttentionBackend::flash
                                                                                       : core::AttentionBackend::unfused;

  core::TrainSpec& t = plan.training;
  t.global_batch_size = args.required_integer("global_batch_size");
  t.dtype = args.flag("bf16") ? core::DType::bf16 : args.flag("fp16") ? core::DType::fp16 : core::DType::fp32;
  if (const auto v = args.real("lr")) t.lr = *v;
  if (const auto v = args.real("min_lr")) t.min_lr = *v;
  if (const auto v = args.integer("lr_warmup_iters")) t.lr_warmup_iters = *v;
  if (const auto v = args.integer("train_iters")) t.train_iters = *v;
  if (const auto v = args.real("weight_decay")) t.weight_decay = *v;
  if (const auto v = args.real("clip_grad")) t.clip_grad = *v;
  if (const auto v = args.real("adam_beta1")) t.adam_beta1 = *v;
  if (const auto v = args.real("adam_beta2")) t.adam_beta2 = *v;
  if (const auto v = args.real("adam_eps")) t.adam_eps = *v;
  if (const auto v = args.integer("seed")) t.seed = *v;

  const int64_t world = args.required_integer("world_size");
  if (options.devices_per_node <= 0)
    throw InvalidInput("--devices-per-node must be at least 1, not {}", options.devices_per_node);
  if (world <= options.devices_per_node) {
    plan.cluster.nodes = 1;
    plan.cluster.devices_per_node = world;
  } else if (world % options.devices_per_node != 0) {
    throw InvalidInput("{}: the run's world_size {} is not a whole number of nodes of {} devices (--devices-per-node)",
                       log.file_name, world, options.devices_per_node);
  } else {
    plan.cluster.nodes = world / options.devices_per_node;
    plan.cluster.devices_per_node = options.devices_per_node;
  }
  plan.cluster.profile = options.profile;
  p.data_parallel = world / std::max<int64_t>(1, p.model_parallel_size());
  if (const auto dp = args.integer("data_parallel_size"); dp && *dp != p.data_parallel)
    throw InvalidInput("{}: data_parallel_size {} in the arguments block is not world_size {} / (tp {} x pp {})",
                       log.file_name, *dp, world, p.tensor_parallel, p.pipeline_parallel);
  // The tokenizer line's padding is Megatron's own; pin it where Loom's rule would pad otherwise.
  if (log.padded_vocab_size && m.vocab_size && core::padded_vocab_size(m, p.tensor_parallel) != *log.padded_vocab_size)
    m.padded_vocab_size = *log.padded_vocab_size;
  try {
    plan.validate();
  } catch (const InvalidInput& e) {
    throw InvalidInput("{}: the plan rebuilt from the arguments block is not valid: {}", log.file_name, e.what());
  }
  return plan;
}

void check_plan_matches_megatron_arguments(const core::Plan& plan, const MegatronLog& log,
                                           const std::string& plan_name) {
  if (log.arguments.empty()) return;
  const Arguments args(log);
  auto check = [&](const char* name, int64_t planned) {
    const auto logged = args.integer(name);
    if (logged && *logged != planned)
      throw InvalidInput("{} is not the plan of {}'s run: {} is {} in the plan but {} in the log's arguments", plan_name,
                         log.file_name, name, planned, *logged);
  };
  check("world_size", plan.cluster.world_size());
  check("tensor_model_parallel_size", plan.parallel.tensor_parallel);
  check("pipeline_model_parallel_size", plan.parallel.pipeline_parallel);
  check("micro_batch_size", plan.parallel.micro_batch_size);
  check("global_batch_size", plan.training.global_batch_size);
  check("num_layers", plan.model.num_layers);
  check("hidden_size", plan.model.hidden_size);
  check("num_attention_heads", plan.model.num_attention_heads);
  check("seq_length", plan.model.seq_length);
}

}  // namespace loom::plan
