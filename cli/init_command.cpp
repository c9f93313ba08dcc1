// `loom init --model NAME`: writes a valid starting plan (plan.json) from a model preset.

#include "cli/cluster_groups.hpp"
#include "cli/command.hpp"
#include "cli/output_targets.hpp"
#include "core/error.hpp"
#include "core/limits.hpp"
#include "core/model_presets.hpp"
#include "core/output_file.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <optional>
#include <vector>

namespace loom::cli {
namespace {

struct InitOptions {
  std::string model;
  std::string out;
  int64_t nodes = 1;
  int64_t devices_per_node = 8;
  std::string profile = "a100-80gb-dgx";
  std::optional<double> price;
  int64_t tp = 1;
  int64_t pp = 1;
  std::optional<int64_t> layers_per_virtual_stage;
  std::optional<int64_t> virtual_stages_per_rank;
  // Uneven splits and mixed clusters, under plan.json's (and Megatron's) names.
  std::vector<int64_t> pipeline_layer_split;
  std::optional<int64_t> first_stage_layers, last_stage_layers;
  bool account_for_embedding = false, account_for_loss = false;
  std::string cluster_groups;
  CLI::Option* nodes_flag = nullptr;
  CLI::Option* devices_per_node_flag = nullptr;
  CLI::Option* profile_flag = nullptr;
  int64_t micro_batch_size = 1;
  std::optional<int64_t> global_batch_size;
  std::optional<int64_t> seq_length;
  std::string schedule = "1f1b";
  std::string recompute = "none";
  bool sequence_parallel = false;
  bool distributed_optimizer = false;
  // Megatron-Core's settings. An overlap the user neither asked for nor turned off follows
  // Megatron-Core's practice: on wherever the machinery it hides is present (the counts of the
  // flags' options tell an explicit choice from a default).
  std::string attention_backend = "flash";
  bool overlap_grad_reduce = true, overlap_param_gather = false, tp_comm_overlap = false;
  CLI::Option* overlap_param_gather_flag = nullptr;
  CLI::Option* tp_comm_overlap_flag = nullptr;
  std::optional<int64_t> ddp_bucket_size;
  std::string dtype = "bf16";
  int64_t train_iters = 100;
  std::optional<int64_t> seed;
};

// A preset gives the tokenizer's vocabulary, which every tp pads for itself, so the plan written
// keeps it that way. A model file may pin padded-vocab-size instead; the pin is kept, and raised
// to a multiple of make-vocab-size-divisible-by × tp (Megatron's rule) only when tp cannot split
// it. Returns a note for the user, or nothing when the pin needed no padding.
std::optional<std::string> pad_pinned_vocabulary_for(core::ModelSpec& model, int64_t tp) {
  // An impossible tp is left for Plan::validate to name.
  if (tp <= 0 || tp > core::limits::kMaxTensorParallel || !model.padded_vocab_size || *model.padded_vocab_size % tp == 0)
    return std::nullopt;
  const int64_t multiple = model.make_vocab_size_divisible_by * tp;
  const int64_t padded = (*model.padded_vocab_size + multiple - 1) / multiple * multiple;
  std::string note = fmt::format("padded-vocab-size {} → {} (a multiple of {} × tensor-model-parallel-size={})",
                                 *model.padded_vocab_size, padded, model.make_vocab_size_divisible_by, tp);
  model.padded_vocab_size = padded;
  return note;
}

core::Plan build_plan(const InitOptions& o) {
  core::Plan plan;
  plan.model = core::resolve_model(o.model);
  if (o.seq_length) plan.model.seq_length = *o.seq_length;
  const std::optional<std::string> padding_note = pad_pinned_vocabulary_for(plan.model, o.tp);
  if (!o.cluster_groups.empty()) {
    for (const CLI::Option* given : {o.nodes_flag, o.devices_per_node_flag, o.profile_flag})
      if (given->count() > 0)
        throw InvalidInput("{} cannot be given with --cluster-groups, whose groups give their nodes, devices per node "
                           "and profiles",
                           given->get_name());
    plan.cluster.groups = parse_cluster_groups(o.cluster_groups);
    plan.cluster.summarise_groups();
  } else {
    plan.cluster.nodes = o.nodes;
    plan.cluster.devices_per_node = o.devices_per_node;
    plan.cluster.profile = o.profile;
  }
  plan.cluster.price_per_device_hour = o.price;
  plan.parallel.tensor_parallel = o.tp;
  plan.parallel.pipeline_parallel = o.pp;
  plan.parallel.layers_per_virtual_stage = o.layers_per_virtual_stage;
  plan.parallel.virtual_stages_per_rank = o.virtual_stages_per_rank;
  plan.parallel.pipeline_layer_split = o.pipeline_layer_split;
  plan.parallel.first_stage_layers = o.first_stage_layers;
  plan.parallel.last_stage_layers = o.last_stage_layers;
  plan.parallel.account_for_embedding = o.account_for_embedding;
  plan.parallel.account_for_loss = o.account_for_loss;
  plan.parallel.micro_batch_size = o.micro_batch_size;
  plan.parallel.schedule = core::parse_schedule(o.schedule, "--schedule");
  plan.parallel.recompute = core::parse_recompute(o.recompute, "--recompute-granularity");
  plan.parallel.sequence_parallel = o.sequence_parallel;
  plan.parallel.distributed_optimizer = o.distributed_optimizer;
  plan.parallel.attention_backend = core::parse_attention_backend(o.attention_backend, "--attention-backend");
  plan.parallel.overlap_grad_reduce = o.overlap_grad_reduce;
  // Defaults only where valid; an explicit --overlap-param-gather or --tp-comm-overlap without
  // what it needs is left for Plan::validate to refuse with the rule.
  plan.parallel.overlap_param_gather = o.overlap_param_gather_flag->count() > 0
                                           ? o.overlap_param_gather
                                           : o.distributed_optimizer && o.overlap_grad_reduce;
  plan.parallel.tp_comm_overlap = o.tp_comm_overlap_flag->count() > 0 ? o.tp_comm_overlap : o.sequence_parallel;
  plan.parallel.ddp_bucket_size = o.ddp_bucket_size;
  core::derive_data_parallel(plan);
  plan.training.dtype = core::parse_dtype(o.dtype, "--dtype");
  plan.training.train_iters = o.train_iters;
  plan.training.lr_warmup_iters = std::min<int64_t>(o.train_iters, std::max<int64_t>(1, o.train_iters / 100));
  if (o.seed) plan.training.seed = *o.seed;
  // Without a global batch, take 8 microbatches per data-parallel rank: enough to keep a pipeline
  // busy, and always divisible.
  const int64_t data_parallel = std::max<int64_t>(plan.parallel.data_parallel, 1);
  plan.training.global_batch_size = o.global_batch_size.value_or(8 * o.micro_batch_size * data_parallel);
  if (!o.global_batch_size && plan.parallel.schedule == core::Schedule::interleaved)
    plan.training.global_batch_size *= std::max<int64_t>(o.pp, 1);
  plan.validate();
  core::resolve_group_profiles(plan.cluster);
  if (padding_note) fmt::print(stderr, "loom: note: {}\n", *padding_note);
  return plan;
}

}  // namespace

Command add_init_command(CLI::App& parent) {
  auto o = std::make_shared<InitOptions>();
  CLI::App* app = parent.add_subcommand("init", "Write a valid starting plan (plan.json) from a model preset");
  app->add_option("--model", o->model, "Model preset (see `loom presets --models`) or model JSON file")->required();
  app->add_option("--out,-o", o->out, "Write the plan to this file instead of standard output");
  o->nodes_flag = app->add_option("--nodes", o->nodes, "Nodes in the cluster")->capture_default_str();
  o->devices_per_node_flag =
      app->add_option("--devices-per-node", o->devices_per_node, "Devices (GPUs) per node")->capture_default_str();
  o->profile_flag =
      app->add_option("--profile", o->profile, "Device profile name or file (see `loom presets --profiles`)")
          ->capture_default_str();
  app->add_option("--cluster-groups", o->cluster_groups,
                  "A mixed cluster, its groups in pipeline order: NODESxDEVICES-PER-NODE:PROFILE,... (e.g. "
                  "1x8:a100-80gb-dgx,1x8:h100-80gb-dgx); instead of --nodes, --devices-per-node and --profile");
  app->add_option("--price-per-device-hour", o->price, "Price of one device-hour, for cost objectives");
  app->add_option("--tp,--tensor-model-parallel-size", o->tp, "Tensor-parallel size")->capture_default_str();
  app->add_option("--pp,--pipeline-model-parallel-size", o->pp, "Pipeline-parallel size")->capture_default_str();
  app->add_option("--num-layers-per-virtual-pipeline-stage", o->layers_per_virtual_stage,
                  "Layers per virtual stage (interleaved schedule only)");
  app->add_option("--num-virtual-stages-per-pipeline-rank", o->virtual_stages_per_rank,
                  "Virtual stages per pipeline rank (interleaved schedule only; needed with uneven first/last stages)");
  app->add_option("--pipeline-layer-split", o->pipeline_layer_split,
                  "Transformer layers of each (virtual) stage in model order, e.g. 7,9,9,7; only the first and "
                  "last may be 0")
      ->delimiter(',');
  app->add_option("--decoder-first-pipeline-num-layers", o->first_stage_layers,
                  "Layers on the first pipeline rank (Megatron's flag); the others share the rest evenly");
  app->add_option("--decoder-last-pipeline-num-layers", o->last_stage_layers,
                  "Layers on the last pipeline rank (Megatron's flag); the others share the rest evenly");
  app->add_flag("--account-for-embedding-in-pipeline-split", o->account_for_embedding,
                "Count the embedding as one layer of an even split: the first stage holds one layer fewer");
  app->add_flag("--account-for-loss-in-pipeline-split", o->account_for_loss,
                "Count the loss as one layer of an even split: the last stage holds one layer fewer");
  app->add_option("--micro-batch-size", o->micro_batch_size, "Micro-batch size in sequences")->capture_default_str();
  app->add_option("--global-batch-size", o->global_batch_size,
                  "Global batch in sequences [default: 8 microbatches per data-parallel rank]");
  app->add_option("--seq-length", o->seq_length, "Sequence length [default: the preset's]");
  app->add_option("--schedule", o->schedule, "Pipeline schedule: gpipe, 1f1b or interleaved")->capture_default_str();
  app->add_option("--recompute-granularity", o->recompute, "Activation recompute: none, selective or full")
      ->capture_default_str();
  app->add_flag("--sequence-parallel", o->sequence_parallel, "Shard norms and dropout along the sequence (needs tp > 1)");
  app->add_flag("--use-distributed-optimizer", o->distributed_optimizer,
                "Shard optimizer state over data parallelism (ZeRO-1)");
  app->add_option("--attention-backend", o->attention_backend,
                  "Attention core: flash (one fused FlashAttention kernel, as Megatron-Core runs it) or unfused "
                  "(scores written to memory, as Loom assumed before)")
      ->capture_default_str();
  app->add_flag("--overlap-grad-reduce,!--no-overlap-grad-reduce", o->overlap_grad_reduce,
                "Reduce each gradient bucket over data parallelism as soon as the backward fills it, beside the "
                "rest of the backward [default: on]");
  o->overlap_param_gather_flag = app->add_flag(
      "--overlap-param-gather,!--no-overlap-param-gather", o->overlap_param_gather,
      "Gather the distributed optimizer's updated parameters bucket by bucket beside the next forward (needs "
      "--use-distributed-optimizer and --overlap-grad-reduce) [default: on with --use-distributed-optimizer]");
  o->tp_comm_overlap_flag = app->add_flag(
      "--tp-comm-overlap,!--no-tp-comm-overlap", o->tp_comm_overlap,
      "Split tensor-parallel all-gathers and reduce-scatters into chunks beside the GEMMs (needs "
      "--sequence-parallel) [default: on with --sequence-parallel]");
  app->add_option("--ddp-bucket-size", o->ddp_bucket_size,
                  "Parameters per gradient bucket (needs --overlap-grad-reduce) [default: Megatron's, "
                  "max(40,000,000, 1,000,000 × data-parallel size)]");
  app->add_option("--dtype", o->dtype, "Training precision: fp32, bf16 or fp16")->capture_default_str();
  app->add_option("--train-iters", o->train_iters, "Optimizer steps")->capture_default_str();
  app->add_option("--seed", o->seed, "Seed of initialization and data order");
  app->footer(
      "Examples:\n  loom init --model gpt2-124m > plan.json\n"
      "  loom init --model llama3-70b --nodes 8 --tp 8 --pp 4 --micro-batch-size 1 \\\n"
      "            --global-batch-size 512 --sequence-parallel --use-distributed-optimizer -o plan.json\n"
      "  loom init --model llama3-8b --pp 4 --pipeline-layer-split 8,9,9,6 -o uneven.json\n"
      "  loom init --model gpt3-175b --cluster-groups 8x8:a100-80gb-dgx,8x8:h100-80gb-dgx --tp 8 --pp 16 -o mixed.json");
  return {app, [o] {
            const std::vector<std::filesystem::path> inputs = {model_file_input(o->model), profile_file_input(o->profile)};
            if (!o->out.empty()) core::check_output_target(o->out, inputs);
            const core::Plan plan = build_plan(*o);
            const std::string text = core::to_json(plan).dump(2) + "\n";
            if (o->out.empty()) {
              std::cout << text;
              return;
            }
            core::write_output_file(o->out, text, inputs);
            if (o->out != core::kStandardOutputName) fmt::print(stderr, "loom: wrote {}\n", o->out);
          }};
}

}  // namespace loom::cli
