// `loom plan`: searches every valid plan for a model on a cluster and ranks them by prediction.

#include "cli/cluster_groups.hpp"
#include "cli/command.hpp"
#include "cli/format.hpp"
#include "cli/output_targets.hpp"
#include "cli/plan_ranking.hpp"
#include "cli/progress_bar.hpp"
#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/model_arithmetic.hpp"
#include "core/model_presets.hpp"
#include "core/output_file.hpp"
#include "core/plan_json.hpp"
#include "core/store.hpp"
#include "core/store_rows.hpp"
#include "planner/search.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>

namespace loom::cli {
namespace {

struct PlanOptions {
  std::string model, profile, format = "table", db, out, objective = "step-time", dtype, attention_backend = "flash";
  std::optional<std::string> cluster_groups;
  std::optional<int64_t> devices, devices_per_node, global_batch_size, seq_length;
  std::optional<double> price;
  int64_t top = 10, max_micro_batch_size = 16;
  int threads = 0;
  bool pareto = false, explain = false, cross_node_tp = false, fewer_devices = false, even_splits_only = false,
       keep_group_order = false;
};

// A mixed cluster replaces the flags of a cluster of one kind: the groups give devices, nodes
// and profiles.
void set_mixed_cluster(const PlanOptions& o, plan::SearchRequest& r) {
  for (const auto& [given, flag] : {std::pair{o.devices.has_value(), "--devices"},
                                    std::pair{o.devices_per_node.has_value(), "--devices-per-node"},
                                    std::pair{!o.profile.empty(), "--profile"},
                                    std::pair{o.fewer_devices, "--allow-fewer-devices"}})
    if (given)
      throw InvalidInput("--cluster-groups gives the nodes, devices and profile of each group; it cannot be used with "
                         "{}",
                         flag);
  r.groups = parse_cluster_groups(*o.cluster_groups);
  core::ClusterSpec cluster;
  cluster.groups = r.groups;
  cluster.summarise_groups();
  r.devices = cluster.world_size();
  r.devices_per_node = cluster.devices_per_node;
  for (const core::DeviceGroup& group : r.groups) r.group_profiles.push_back(core::resolve_profile(group.profile));
  r.profile_name = r.groups.front().profile;
  r.profile = r.group_profiles.front();
}

// Fills the request from the flags; what is not given comes from the built-in default plan.
plan::SearchRequest make_request(const PlanOptions& o) {
  const core::Plan defaults = core::default_plan();
  plan::SearchRequest r;
  r.model = o.model.empty() ? defaults.model : core::resolve_model(o.model);
  if (o.seq_length) r.model.seq_length = *o.seq_length;
  r.training = defaults.training;
  if (o.global_batch_size) r.training.global_batch_size = *o.global_batch_size;
  if (!o.dtype.empty()) r.training.dtype = core::parse_dtype(o.dtype, "--dtype");
  r.devices_per_node = o.devices_per_node.value_or(defaults.cluster.devices_per_node);
  r.devices = o.devices.value_or(defaults.cluster.world_size());
  r.profile_name = o.profile.empty() ? defaults.cluster.profile : o.profile;
  if (o.keep_group_order && !o.cluster_groups)
    throw InvalidInput("--keep-group-order only applies to a mixed cluster; give --cluster-groups, or remove it");
  if (o.cluster_groups) set_mixed_cluster(o, r);
  else r.profile = core::resolve_profile(r.profile_name);
  r.search_layer_splits = !o.even_splits_only;
  r.search_group_orders = !o.keep_group_order;
  r.price_per_device_hour = o.price;
  r.objective = plan::parse_objective(o.objective);
  r.allow_cross_node_tp = o.cross_node_tp;
  r.allow_fewer_devices = o.fewer_devices;
  r.max_micro_batch_size = o.max_micro_batch_size;
  r.attention_backend = core::parse_attention_backend(o.attention_backend, "--attention-backend");
  return r;
}

void store_results(const std::string& path, const plan::SearchResult& result) {
  core::Store store = core::Store::open(path);
  std::vector<std::pair<core::PlanRow, core::PredictionRow>> rows;
  auto add = [&](const std::vector<plan::RankedPlan>& plans, const char* list) {
    for (size_t i = 0; i < plans.size(); ++i)
      rows.emplace_back(core::plan_row(plans[i].plan, fmt::format("loom plan: {} #{}", list, i + 1)),
                        sim::prediction_row(0, plans[i].prediction));
  };
  add(result.top, "best");
  add(result.pareto, "pareto");
  store.insert_predicted_plans(std::move(rows));
}

// The files the search reads (and the store it writes): --out may be none of them.
std::vector<std::filesystem::path> plan_inputs(const PlanOptions& o) {
  std::vector<std::filesystem::path> inputs = {model_file_input(o.model), profile_file_input(o.profile), o.db};
  if (o.cluster_groups) {
    try {
      for (const core::DeviceGroup& group : parse_cluster_groups(*o.cluster_groups))
        inputs.push_back(profile_file_input(group.profile));
    } catch (const InvalidInput&) {
      // said when the request is made
    }
  }
  return inputs;
}

}  // namespace

Command add_plan_command(CLI::App& parent) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* app = parent.add_subcommand("plan", "Search every valid plan and rank them by predicted step time");
  app->add_option("--model", o->model, "Model preset or model JSON file [default: the built-in default plan's]");
  app->add_option("--devices", o->devices, "Devices in the cluster [default: 8]");
  app->add_option("--devices-per-node", o->devices_per_node, "Devices per node [default: 8]");
  app->add_option("--profile", o->profile, "Profile name or file [default: a100-80gb-dgx]");
  app->add_option("--cluster-groups", o->cluster_groups,
                  "A mixed cluster: groups of nodes in pipeline order, NODESxDEVICES-PER-NODE:PROFILE separated by "
                  "commas (e.g. 4x8:a100-80gb-dgx,4x8:h100-80gb-dgx); instead of --devices, --devices-per-node and "
                  "--profile");
  app->add_option("--global-batch-size", o->global_batch_size, "Global batch in sequences [default: 64]");
  app->add_option("--seq-length", o->seq_length, "Sequence length [default: the model's]");
  app->add_option("--dtype", o->dtype, "Training precision: fp32, bf16 or fp16 [default: bf16]");
  app->add_option("--top", o->top, "How many plans to show")->check(CLI::Range(int64_t(1), int64_t(1000000)))->capture_default_str();
  app->add_option("--objective", o->objective, "Rank by step-time, tokens-per-s, cost or memory")->capture_default_str();
  app->add_option("--price-per-device-hour", o->price, "Price of a device-hour (for --objective cost)");
  app->add_option("--max-micro-batch-size", o->max_micro_batch_size, "Largest micro-batch size tried (powers of two)")
      ->capture_default_str();
  app->add_option("--format", o->format, "Output format: table, json or csv")
      ->check(CLI::IsMember({"table", "json", "csv"}))
      ->capture_default_str();
  app->add_option("--db", o->db, "Store the ranked plans and their predictions in this SQLite file");
  app->add_option("--out", o->out,
                  "Write the best plan (plan.json) for `loom simulate` and `loom run`; '-': standard output, alone");
  app->add_option("--threads", o->threads, "Threads to search with [default: every core]")->check(CLI::Range(1, 1024));
  app->add_flag("--pareto", o->pareto, "Also show the Pareto front of step time vs peak memory");
  app->add_flag("--explain", o->explain, "Show how many combinations each rule rejected");
  app->add_flag("--allow-cross-node-tp", o->cross_node_tp, "Let tensor parallelism span nodes");
  app->add_flag("--allow-fewer-devices", o->fewer_devices, "Also try plans that leave devices idle");
  app->add_flag("--even-splits-only", o->even_splits_only,
                "Split the layers evenly over the pipeline stages only (by default uneven splits that balance the "
                "embedding, the loss and mixed devices are searched too)");
  app->add_flag("--keep-group-order", o->keep_group_order,
                "With --cluster-groups: keep the groups in the order given along the pipeline (by default every "
                "order of up to 3 groups is searched: which hosts take the first node ranks is yours to choose)");
  app->add_option("--attention-backend", o->attention_backend,
                  "Attention kernel of every plan: flash (fused, as current Megatron-Core) or unfused (Megatron-LM of "
                  "2021); the overlaps of gradient reduce, parameter gather and TP communication are searched")
      ->capture_default_str();
  app->footer(
      "Examples:\n  loom plan\n"
      "  loom plan --model gpt3-175b --devices 1024 --devices-per-node 8 --profile a100-80gb-dgx \\\n"
      "            --global-batch-size 1536 --seq-length 2048 --top 10 --explain\n"
      "  loom plan --model llama3-70b --devices 256 --global-batch-size 1024 --pareto --out best.json\n"
      "  loom plan --model gpt3-175b --cluster-groups 64x8:a100-80gb-dgx,64x8:h100-80gb-dgx \\\n"
      "            --global-batch-size 1536 --seq-length 2048");
  return {app, [o] {
            if (!o->out.empty()) core::check_output_target(o->out, plan_inputs(*o));
            // A store that is there already must be one of Loom's: found out now, not after the search.
            if (!o->db.empty() && std::filesystem::exists(o->db)) core::Store::open(o->db, core::Store::OpenMode::existing);
            const plan::SearchRequest request = make_request(*o);
            plan::SearchOptions options;
            options.top = o->top;
            options.pareto = o->pareto;
            options.threads = o->threads;
            ProgressBar bar("searching");
            options.progress = [&bar](double fraction) { bar.update(fraction); };
            const plan::SearchResult result = plan::search(request, options);
            if (!o->db.empty()) store_results(o->db, result);
            if (!o->out.empty() && !result.top.empty())
              core::write_output_file(o->out, core::to_json(result.top.front().plan).dump(2) + "\n", plan_inputs(*o));
            // With --out -, standard output holds the best plan alone, ready for `loom show -`.
            const bool quiet = o->out == core::kStandardOutputName;
            if (quiet) {
              // nothing more: the plan went out above
            } else if (o->format == "json") {
              std::cout << search_result_json(request, result).dump(2) << "\n";
            } else if (o->format == "csv") {
              print_search_csv(result);
            } else {
              print_search_table(request, result, o->pareto, o->explain);
            }
            if (result.stats.valid == 0)
              throw InvalidInput("no valid plan exists for {} with global batch {} on {} devices; see the reject "
                                 "reasons above",
                                 request.model.name.empty() ? "this model" : request.model.name,
                                 request.training.global_batch_size, request.devices);
            if (result.stats.fitting == 0)
              throw Infeasible("no plan fits in {:.0f} GiB per device; the nearest misses are listed above",
                               double(request.device_memory_bytes()) / double(1 << 30));
            if (!o->out.empty() && !quiet && o->format == "table") fmt::print("\nBest plan written to {}\n", o->out);
          }};
}

}  // namespace loom::cli
