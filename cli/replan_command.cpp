// `loom replan DIR --devices N`: plans for the devices a checkpoint has left. The newest complete
// checkpoint in DIR names the plan that wrote it; its model and training are searched on N devices
// (planner/replan.hpp), the ranking printed as `loom plan` prints it, and the best plan written
// for `loom run NEW --resume --checkpoint-dir DIR`.

#include "cli/command.hpp"
#include "cli/output_targets.hpp"
#include "cli/plan_ranking.hpp"
#include "cli/progress_bar.hpp"
#include "core/error.hpp"
#include "core/output_file.hpp"
#include "core/plan_json.hpp"
#include "planner/replan.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>

namespace loom::cli {
namespace {

struct ReplanOptions {
  std::string dir, profile, format = "table", out = "replan.json", objective = "step-time";
  int64_t devices = 0;
  std::optional<int64_t> devices_per_node;
  int64_t top = 10, max_micro_batch_size = 16;
  int threads = 0;
  bool keep_global_batch = false, pareto = false, explain = false;
};

std::string layout_of(const core::Plan& plan) {
  return fmt::format("tp{} pp{} dp{} mbs{} on {} devices ({} x {})", plan.parallel.tensor_parallel,
                     plan.parallel.pipeline_parallel, plan.parallel.data_parallel,
                     plan.parallel.micro_batch_size, plan.cluster.world_size(), plan.cluster.nodes,
                     plan.cluster.devices_per_node);
}

core::Json replan_json(const ReplanOptions& o, const plan::ReplanResult& r) {
  return {{"format", "loom-replan"},
          {"version", 1},
          {"checkpoint",
           {{"directory", r.checkpoint.step_directory.string()},
            {"step", r.checkpoint.step},
            {"devices", r.checkpoint.plan.cluster.world_size()},
            {"plan", core::to_json(r.checkpoint.plan)}}},
          {"skipped", r.checkpoint.skipped},
          {"devices", r.request.devices},
          {"devices_per_node", r.request.devices_per_node},
          {"global_batch",
           {{"checkpoint", r.checkpoint_global_batch},
            {"chosen", r.global_batch},
            {"kept", r.global_batch == r.checkpoint_global_batch},
            {"note", r.global_batch_note}}},
          {"out",
           r.best && o.out != core::kStandardOutputName ? core::Json(o.out) : core::Json(nullptr)},
          {"search", search_result_json(r.request, r.search)}};
}

}  // namespace

Command add_replan_command(CLI::App& parent) {
  auto o = std::make_shared<ReplanOptions>();
  CLI::App* app = parent.add_subcommand(
      "replan", "Plan for the devices a checkpoint has left, keeping its model and training");
  app->add_option("dir", o->dir, "Checkpoint directory (--checkpoint-dir of the run)")->required();
  app->add_option("--devices", o->devices, "Devices left to continue on")->required();
  app->add_option(
      "--devices-per-node", o->devices_per_node,
      "Devices per node [default: the checkpoint plan's, or all N on one node when fewer]");
  app->add_option("--profile", o->profile, "Profile name or file [default: the checkpoint plan's]");
  app->add_flag("--keep-global-batch", o->keep_global_batch,
                "Refuse rather than change the global batch when no plan on N devices divides it");
  app->add_option("--top", o->top, "How many plans to show")
      ->check(CLI::Range(int64_t(1), int64_t(1000000)))
      ->capture_default_str();
  app->add_option("--objective", o->objective, "Rank by step-time, tokens-per-s, cost or memory")
      ->capture_default_str();
  app->add_option("--max-micro-batch-size", o->max_micro_batch_size,
                  "Largest micro-batch size tried (powers of two)")
      ->capture_default_str();
  app->add_option("--format", o->format, "Output format: table, json or csv")
      ->check(CLI::IsMember({"table", "json", "csv"}))
      ->capture_default_str();
  app->add_option("--out", o->out, "Write the best plan here; '-': standard output, alone")
      ->capture_default_str();
  app->add_option("--threads", o->threads, "Threads to search with [default: every core]")
      ->check(CLI::Range(1, 1024));
  app->add_flag("--pareto", o->pareto, "Also show the Pareto front of step time vs peak memory");
  app->add_flag("--explain", o->explain, "Show how many combinations each rule rejected");
  app->footer(
      "The written plan keeps the checkpoint's model, seed, learning-rate schedule and steps; only "
      "the parallel\n"
      "layout, the cluster and (where no plan divides it, said plainly) the global batch change.\n"
      "Examples:\n  loom replan ckpt --devices 3 --out replan.json\n"
      "  loom run replan.json --resume --checkpoint-dir ckpt");
  return {
      app, [o] {
        // Nothing of the checkpoint may be written over: the manifests name the plan being
        // replaced.
        const std::vector<std::filesystem::path> inputs = {o->dir, profile_file_input(o->profile)};
        core::check_output_target(o->out, inputs);
        plan::ReplanRequest request;
        request.checkpoint_dir = o->dir;
        request.devices = o->devices;
        request.devices_per_node = o->devices_per_node;
        request.profile = o->profile;
        request.keep_global_batch = o->keep_global_batch;
        request.objective = plan::parse_objective(o->objective);
        request.max_micro_batch_size = o->max_micro_batch_size;
        plan::SearchOptions options;
        options.top = o->top;
        options.pareto = o->pareto;
        options.threads = o->threads;
        ProgressBar bar("searching");
        options.progress = [&bar](double fraction) { bar.update(fraction); };
        const plan::ReplanResult result = plan::replan(request, options);
        for (const std::string& skipped : result.checkpoint.skipped)
          fmt::print(stderr, "loom: warning: skipped {}\n", skipped);
        if (result.best)
          core::write_output_file(o->out, core::to_json(*result.best).dump(2) + "\n", inputs);
        const bool quiet = o->out == core::kStandardOutputName;
        if (quiet) {
          if (!result.global_batch_note.empty())
            fmt::print(stderr, "loom: note: {}\n", result.global_batch_note);
        } else if (o->format == "json") {
          std::cout << replan_json(*o, result).dump(2) << "\n";
        } else if (o->format == "csv") {
          print_search_csv(result.search);
        } else {
          fmt::print("Checkpoint {} (step {}), written by {}\n",
                     result.checkpoint.step_directory.string(), result.checkpoint.step,
                     layout_of(result.checkpoint.plan));
          if (!result.global_batch_note.empty()) fmt::print("Note: {}\n", result.global_batch_note);
          print_search_table(result.request, result.search, o->pareto, o->explain);
        }
        if (!result.best)
          throw InvalidInput(
              "no plan for the checkpoint's model fits in {:.0f} GiB per device on {} devices; the "
              "nearest misses are listed above",
              double(result.request.profile.device.memory_bytes) / double(1 << 30), o->devices);
        if (!quiet && o->format == "table")
          fmt::print(
              "\nBest plan ({}) written to {}; continue with:\n  loom run {} --resume "
              "--checkpoint-dir {}\n",
              layout_of(*result.best), o->out, o->out, o->dir);
      }};
}

}  // namespace loom::cli
