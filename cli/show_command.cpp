// `loom show [PLAN.json]`: validates a plan and prints what follows from it.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "cli/pipeline_stages.hpp"
#include "core/default_plan.hpp"
#include "core/json_reader.hpp"
#include "core/model_arithmetic.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"
#include "core/rank_layout.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>
#include <optional>
#include <string_view>
#include <vector>

namespace loom::cli {
namespace {

using core::Json;

using core::GroupKind;
constexpr GroupKind kGroupKinds[] = {GroupKind::tensor, GroupKind::data, GroupKind::pipeline,
                                     GroupKind::embedding};

struct Derived {
  // The model's own count, over its vocabulary before padding (as published: GPT-2 124M has
  // 124,439,808); the per-device counts and the FLOPs are over the padded rows the plan trains.
  int64_t parameters;
  double parameters_closed_form;
  std::vector<int64_t> parameters_per_device_by_stage;
  int64_t tokens_per_step;
  double model_flops_per_step;
  double hardware_flops_per_step;
};

Derived derive(const core::Plan& plan) {
  const int64_t batch = plan.training.global_batch_size;
  return {core::parameter_count(plan.model),
          core::megatron_parameter_estimate(plan.model),
          core::parameters_per_device_by_stage(plan),
          batch * plan.model.seq_length,
          core::model_flops_per_step(plan),
          core::hardware_flops_per_step(plan)};
}

// The parallel keys Megatron-Core added (attention backend, communication overlaps, bucket size).
// A plan written before Loom knew them lacks them and reads as Loom ran it then: unfused
// attention, no overlap. ParallelPlan cannot tell an absent key from its default, so `show` looks
// at the document itself.
constexpr std::string_view kMegatronCoreKeys[] = {"attention-backend", "overlap-grad-reduce", "overlap-param-gather",
                                                  "tp-comm-overlap", "ddp-bucket-size"};

// A plan as read, with the keys of kMegatronCoreKeys its "parallel" object lacked, in that order.
struct ShownPlan {
  core::Plan plan;
  std::vector<std::string> absent_keys;  // none for the built-in default plan, which has no document
};

ShownPlan read_shown_plan(const std::string& path) {
  const std::string text = core::read_text_file(path);
  const Json document = core::parse_json_text(text, path == "-" ? "<stdin>" : path);
  ShownPlan shown{core::plan_from_json(document), {}};
  const Json& parallel = document.at("parallel");  // plan_from_json has required it as an object
  for (std::string_view key : kMegatronCoreKeys)
    if (!parallel.contains(key)) shown.absent_keys.emplace_back(key);
  return shown;
}

// Megatron-Core reduces all gradients as one bucket without overlap-grad-reduce, so a bucket size
// is only reported when the overlap uses it.
std::optional<int64_t> used_bucket_parameters(const core::ParallelPlan& p) {
  if (!p.overlap_grad_reduce) return std::nullopt;
  return p.grad_bucket_parameters();
}

Json megatron_core_settings_json(const ShownPlan& shown) {
  const core::ParallelPlan& p = shown.plan.parallel;
  const std::optional<int64_t> bucket = used_bucket_parameters(p);
  return {{"attention-backend", core::to_string(p.attention_backend)},
          {"overlap-grad-reduce", p.overlap_grad_reduce},
          {"overlap-param-gather", p.overlap_param_gather},
          {"tp-comm-overlap", p.tp_comm_overlap},
          {"ddp-bucket-size", p.ddp_bucket_size ? Json(*p.ddp_bucket_size) : Json(nullptr)},
          {"grad_bucket_parameters", bucket ? Json(*bucket) : Json(nullptr)},
          {"absent_keys", shown.absent_keys}};
}

Json layout_json(const core::Plan& plan) {
  const core::RankLayout layout = core::RankLayout::of(plan.parallel);
  Json out = Json::object();
  for (GroupKind kind : kGroupKinds) {
    const auto groups = layout.groups(kind);
    bool any_spans = false;
    for (const auto& g : groups) any_spans |= core::spans_nodes(g, plan.cluster.devices_per_node);
    out[std::string(core::to_string(kind))] = {{"groups", groups.size()},
                                               {"ranks_per_group", groups.front().size()},
                                               {"spans_nodes", any_spans},
                                               {"members", groups}};
  }
  return out;
}

Json show_json(const ShownPlan& shown, const Derived& d) {
  const core::Plan& plan = shown.plan;
  return {{"format", "loom-show"},
          {"version", 1},
          {"plan", core::to_json(plan)},
          {"parameters", d.parameters},
          {"parameters_megatron_estimate", d.parameters_closed_form},
          {"parameters_per_device_by_stage", d.parameters_per_device_by_stage},
          {"padded_vocab_size", plan.padded_vocab_size()},
          {"tokens_per_step", d.tokens_per_step},
          {"microbatches", plan.microbatches()},
          {"model_flops_per_step", d.model_flops_per_step},
          {"hardware_flops_per_step", d.hardware_flops_per_step},
          {"world_size", plan.cluster.world_size()},
          {"data_parallel_size", plan.parallel.data_parallel},
          {"virtual_stages", plan.virtual_stages()},
          {"layer_split", layer_split_source(plan.parallel)},
          {"pipeline_stage_layers", plan.pipeline_rank_layers()},
          {"virtual_stage_layers", plan.virtual_stage_layers()},
          {"pipeline_stages", pipeline_stages_json(plan)},
          {"megatron_core_settings", megatron_core_settings_json(shown)},
          {"layout", layout_json(plan)}};
}

// "vocab 50,257 (padded to 51,200 for tp 8)" when the plan derives the padding; a pinned size
// as it is, with the tokenizer's share when the plan gives that too.
std::string vocabulary_text(const core::Plan& plan) {
  const core::ModelSpec& m = plan.model;
  const int64_t padded = plan.padded_vocab_size();
  if (!m.vocab_size) return with_thousands(padded);
  if (m.padded_vocab_size)
    return fmt::format("{} (padded-vocab-size {})", with_thousands(*m.vocab_size), with_thousands(padded));
  return fmt::format("{} (padded to {} for tp {}: a multiple of {} × {})", with_thousands(*m.vocab_size),
                     with_thousands(padded), plan.parallel.tensor_parallel, m.make_vocab_size_divisible_by,
                     plan.parallel.tensor_parallel);
}

std::string model_line(const core::Plan& plan) {
  const core::ModelSpec& m = plan.model;
  return fmt::format(
      "{} layers, hidden {}, {} heads ({} query groups), ffn {}, vocab {}, seq {}; {}, {}, {}, {} "
      "embeddings",
      m.num_layers, m.hidden_size, m.num_attention_heads, m.query_groups(), m.ffn_hidden_size,
      vocabulary_text(plan), with_thousands(m.seq_length),
      m.activation == core::Activation::swiglu ? "SwiGLU" : "GELU", core::to_string(m.normalization),
      m.position_embedding == core::PositionEmbedding::rope
          ? fmt::format("rotary positions (base {})", with_thousands(m.rotary_base))
          : std::string("learned positions"),
      m.tied_embeddings() ? "tied" : "untied");
}

std::string parallel_line(const core::Plan& plan) {
  const core::ParallelPlan& p = plan.parallel;
  return fmt::format(
      "tp {} · pp {} · dp {} · vpp {} · micro-batch {} · schedule {} · recompute {} · sequence "
      "parallel {} · distributed optimizer {}",
      p.tensor_parallel, p.pipeline_parallel, p.data_parallel, plan.virtual_stages(), p.micro_batch_size,
      core::to_string(p.schedule), core::to_string(p.recompute), p.sequence_parallel ? "on" : "off",
      p.distributed_optimizer ? "on" : "off");
}

std::string attention_line(const core::ParallelPlan& p) {
  return fmt::format("attention-backend {} ({})", core::to_string(p.attention_backend),
                     p.attention_backend == core::AttentionBackend::flash
                         ? "one fused FlashAttention kernel; the s × s scores are never stored"
                         : "scores written to memory, soft-maxed and read back");
}

std::string overlap_line(const core::ParallelPlan& p) {
  auto on_off = [](bool on) { return on ? "on" : "off"; };
  std::string bucket = "none: without overlap-grad-reduce all gradients reduce as one bucket";
  if (p.ddp_bucket_size) bucket = fmt::format("{} parameters", with_thousands(*p.ddp_bucket_size));
  else if (p.overlap_grad_reduce)
    bucket = fmt::format("{} parameters (Megatron default: max(40M, 1M × dp))", with_thousands(p.grad_bucket_parameters()));
  return fmt::format("overlap-grad-reduce {} · overlap-param-gather {} · tp-comm-overlap {} · ddp-bucket-size {}",
                     on_off(p.overlap_grad_reduce), on_off(p.overlap_param_gather), on_off(p.tp_comm_overlap), bucket);
}

// Which keys an older plan lacked and what Loom reads in their place.
std::string absent_keys_line(const core::ParallelPlan& p, const std::vector<std::string>& absent) {
  std::vector<std::string> assumed;
  auto assume = [&](const std::string& what) {
    if (std::find(assumed.begin(), assumed.end(), what) == assumed.end()) assumed.push_back(what);
  };
  for (const std::string& key : absent) {
    if (key == "attention-backend") assume("unfused attention");
    else if (key != "ddp-bucket-size") assume("no overlap");
    else if (p.overlap_grad_reduce) assume("Megatron's default bucket size");  // else no bucket is used
  }
  std::string line = fmt::format("the plan has no {} (as plans written before Loom knew {})", fmt::join(absent, ", "),
                                 absent.size() == 1 ? "it" : "them");
  if (!assumed.empty()) line += fmt::format("; the old behaviour is assumed: {}", fmt::join(assumed, ", "));
  return line;
}

std::string stage_parameters_text(const std::vector<int64_t>& stages) {
  std::string out;
  for (size_t i = 0; i < stages.size(); ++i) {
    if (i == 4 && stages.size() > 6) {
      out += fmt::format(", … stage {}: {}", stages.size() - 1, with_thousands(stages.back()));
      break;
    }
    out += fmt::format("{}stage {}: {}", i ? ", " : "", i, with_thousands(stages[i]));
  }
  return out;
}

void print_layout(const core::Plan& plan) {
  const core::RankLayout layout = core::RankLayout::of(plan.parallel);
  const int64_t per_node = plan.cluster.devices_per_node;
  fmt::print("\nRank layout (Megatron order: tensor rank fastest, then data, then pipeline)\n");
  TextTable groups({"group", "count", "ranks each", "placement", "first group"}, {1, 2});
  for (GroupKind kind : kGroupKinds) {
    const auto all = layout.groups(kind);
    bool spans = false;
    for (const auto& g : all) spans |= core::spans_nodes(g, per_node);
    groups.add_row({std::string(core::to_string(kind)), std::to_string(all.size()),
                    std::to_string(all.front().size()), spans ? "crosses nodes" : "within a node",
                    fmt::format("[{}]", fmt::join(all.front(), ", "))});
  }
  fmt::print("{}", groups.render());
  if (layout.world_size() > 32) return;
  const bool mixed = plan.cluster.mixed();
  std::vector<std::string> header = {"rank", "node", "tp", "dp", "pp"};
  if (mixed) header.push_back("device group");
  TextTable ranks(header, {0, 1, 2, 3, 4});
  for (int64_t r = 0; r < layout.world_size(); ++r) {
    const core::RankCoords c = layout.coords(r);
    std::vector<std::string> row = {std::to_string(r), std::to_string(core::node_of(r, per_node)),
                                    std::to_string(c.tensor), std::to_string(c.data), std::to_string(c.pipeline)};
    if (mixed) {
      const int64_t group = plan.cluster.group_of_rank(r);
      row.push_back(fmt::format("{}: {}", group, plan.cluster.groups[size_t(group)].profile));
    }
    ranks.add_row(std::move(row));
  }
  fmt::print("\n{}", ranks.render());
}

// "profile a100-80gb-dgx (datasheet, NVIDIA A100-SXM4-80GB, 80.0 GiB memory)"; for a mixed cluster
// each group's nodes and profile, in pipeline order.
std::string profile_text(const std::string& name) {
  const core::Profile profile = core::resolve_profile(name);
  return fmt::format("{} ({}, {}, {} memory)", profile.name, profile.provenance, profile.device.name,
                     human_bytes(double(profile.device.memory_bytes)));
}

std::string cluster_text(const core::ClusterSpec& cluster) {
  if (!cluster.mixed()) return "profile " + profile_text(cluster.profile);
  std::vector<std::string> groups;
  for (const core::DeviceGroup& group : cluster.groups)
    groups.push_back(fmt::format("{} node(s) × {} of {}", group.nodes, group.devices_per_node, profile_text(group.profile)));
  return fmt::format("{} device groups, in pipeline order: {}", groups.size(), fmt::join(groups, " + "));
}

void print_table(const ShownPlan& shown, const Derived& d, const std::string& origin) {
  const core::Plan& plan = shown.plan;
  const core::TrainSpec& t = plan.training;
  core::resolve_group_profiles(plan.cluster);  // an unknown profile is refused before anything is printed
  fmt::print("Plan ({}): {} on {} node(s) × {} devices = {} devices\n", origin,
             plan.model.name.empty() ? "unnamed model" : plan.model.name, plan.cluster.nodes,
             plan.cluster.devices_per_node, plan.cluster.world_size());
  fmt::print("  model     {}\n", model_line(plan));
  fmt::print("  training  global batch {} sequences, {}, lr {:.3g} → {:.3g} (warm-up {} of {} iterations, "
             "cosine), weight decay {}, clip-grad {}, seed {}\n",
             t.global_batch_size, core::to_string(t.dtype), t.lr, t.min_lr, t.lr_warmup_iters,
             t.train_iters, t.weight_decay, t.clip_grad, t.seed);
  fmt::print("  cluster   {}{}\n", cluster_text(plan.cluster),
             plan.cluster.price_per_device_hour
                 ? fmt::format(", {:.2f} per device-hour", *plan.cluster.price_per_device_hour)
                 : "");
  fmt::print("  parallel  {}\n", parallel_line(plan));
  fmt::print("  layers    per pipeline stage {}\n", layer_split_text(plan));
  if (plan.cluster.mixed()) fmt::print("  placement {}\n", placement_text(plan));
  fmt::print("  attention {}\n", attention_line(plan.parallel));
  fmt::print("  overlap   {}\n", overlap_line(plan.parallel));
  if (!shown.absent_keys.empty()) fmt::print("  note      {}\n", absent_keys_line(plan.parallel, shown.absent_keys));
  fmt::print("\n");

  TextTable table({"derived quantity", "value", "note"}, {1});
  table.add_row({"parameters", with_thousands(d.parameters),
                 fmt::format("Megatron closed form: {}", with_thousands(int64_t(std::llround(d.parameters_closed_form))))});
  table.add_row({"parameters per device", with_thousands(*std::max_element(
                     d.parameters_per_device_by_stage.begin(), d.parameters_per_device_by_stage.end())),
                 "largest stage; " + stage_parameters_text(d.parameters_per_device_by_stage)});
  table.add_row({"tokens per step", with_thousands(d.tokens_per_step), "global batch × seq-length"});
  table.add_row({"microbatches per step", std::to_string(plan.microbatches()),
                 "global batch / (micro-batch × dp)"});
  const std::vector<int64_t> stage_layers = plan.pipeline_rank_layers();
  const auto [fewest, most] = std::minmax_element(stage_layers.begin(), stage_layers.end());
  table.add_row({"layers per pipeline stage", *fewest == *most ? std::to_string(*most) : fmt::format("{} to {}", *fewest, *most),
                 fmt::format("{}; {} virtual stage(s) per pipeline rank", layer_split_source(plan.parallel),
                             plan.virtual_stages())});
  table.add_row({"model FLOPs per step", human_si(d.model_flops_per_step, "FLOP"),
                 "Megatron's 72·B·s·L·h²·(1 + s/6h + V/12hL) for GPT models"});
  table.add_row({"hardware FLOPs per step", human_si(d.hardware_flops_per_step, "FLOP"),
                 fmt::format("with recompute {}", core::to_string(plan.parallel.recompute))});
  table.add_row({"world size", fmt::format("{} ranks", plan.cluster.world_size()),
                 fmt::format("dp {} = {} devices / (tp {} × pp {})", plan.parallel.data_parallel,
                             plan.cluster.world_size(), plan.parallel.tensor_parallel,
                             plan.parallel.pipeline_parallel)});
  fmt::print("{}", table.render());
  fmt::print("\nPipeline stages (ranks, device group and transformer layers of each)\n{}", pipeline_stage_table(plan));
  print_layout(plan);
}

}  // namespace

Command add_show_command(CLI::App& parent) {
  struct Options {
    std::string plan_path;
    std::string format = "table";
  };
  auto options = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand(
      "show", "Validate a plan and print what follows from it: parameters, FLOPs per step, "
              "microbatches, rank layout");
  app->add_option("plan", options->plan_path,
                  "Plan JSON file ('-' reads standard input); without it, the built-in default plan");
  add_format_option(*app, options->format);
  app->footer("Examples:\n  loom show\n  loom show plan.json --format json\n"
              "  loom init --model llama3-8b --tp 4 | loom show -");
  return {app, [options] {
            const bool builtin = options->plan_path.empty();
            const ShownPlan shown = builtin ? ShownPlan{core::default_plan(), {}} : read_shown_plan(options->plan_path);
            if (builtin) shown.plan.validate();
            const Derived derived = derive(shown.plan);
            if (options->format == "json") {
              core::resolve_group_profiles(shown.plan.cluster);  // an unknown profile is an error here too
              std::cout << show_json(shown, derived).dump(2) << "\n";
            } else {
              print_table(shown, derived, builtin ? "built-in default" : options->plan_path);
            }
          }};
}

}  // namespace loom::cli
