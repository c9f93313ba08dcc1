// `loom plan`: searches every valid plan for a model on a cluster and ranks them by prediction.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "cli/output_targets.hpp"
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
  std::optional<int64_t> devices, devices_per_node, global_batch_size, seq_length;
  std::optional<double> price;
  int64_t top = 10, max_micro_batch_size = 16;
  int threads = 0;
  bool pareto = false, explain = false, cross_node_tp = false, fewer_devices = false;
};

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
  r.profile = core::resolve_profile(r.profile_name);
  r.price_per_device_hour = o.price;
  r.objective = plan::parse_objective(o.objective);
  r.allow_cross_node_tp = o.cross_node_tp;
  r.allow_fewer_devices = o.fewer_devices;
  r.max_micro_batch_size = o.max_micro_batch_size;
  r.attention_backend = core::parse_attention_backend(o.attention_backend, "--attention-backend");
  return r;
}

std::string seconds(double s) { return s >= 1.0 ? fmt::format("{:.3f} s", s) : fmt::format("{:.2f} ms", s * 1e3); }
std::string gib(double bytes) { return fmt::format("{:.1f} GiB", bytes / double(int64_t(1) << 30)); }

// Megatron-Core's overlaps a plan turns on, short for a table cell: "grad+param+tp", "none".
std::string overlaps_of(const core::ParallelPlan& p) {
  std::string out;
  for (const auto& [on, name] : {std::pair{p.overlap_grad_reduce, "grad"}, std::pair{p.overlap_param_gather, "param"},
                                 std::pair{p.tp_comm_overlap, "tp"}})
    if (on) out += (out.empty() ? "" : "+") + std::string(name);
  return out.empty() ? "none" : out;
}

std::vector<std::string> row_cells(int64_t rank, const plan::RankedPlan& r, int64_t capacity) {
  const core::ParallelPlan& p = r.plan.parallel;
  return {std::to_string(rank),
          std::to_string(p.tensor_parallel),
          std::to_string(p.pipeline_parallel),
          std::to_string(p.data_parallel),
          std::to_string(r.plan.virtual_stages()),
          std::to_string(p.micro_batch_size),
          std::string(core::to_string(p.schedule)),
          std::string(core::to_string(p.recompute)),
          p.sequence_parallel ? "on" : "off",
          p.distributed_optimizer ? "on" : "off",
          overlaps_of(p),
          seconds(r.prediction.step_time_s),
          with_thousands(int64_t(r.prediction.tokens_per_s)),
          fmt::format("{:.1f} %", 100.0 * r.prediction.mfu),
          gib(double(r.prediction.peak_memory_bytes)),
          gib(double(capacity - r.prediction.peak_memory_bytes))};
}

const std::vector<std::string> kColumns = {"#", "tp", "pp", "dp", "vpp", "mbs", "schedule", "recompute", "sp", "dist-opt",
                                           "overlap", "step time", "tokens/s", "MFU", "peak memory", "headroom"};
const std::vector<size_t> kNumeric = {0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15};

void print_plans(const std::string& title, const std::vector<plan::RankedPlan>& plans, int64_t capacity) {
  TextTable table(kColumns, kNumeric);
  for (size_t i = 0; i < plans.size(); ++i) table.add_row(row_cells(int64_t(i) + 1, plans[i], capacity));
  fmt::print("{}\n{}", title, table.render());
}

void print_rejects(const plan::SearchResult& result, int64_t capacity) {
  fmt::print("\nRejected combinations, by reason\n");
  TextTable table({"reason", "plans"}, {1});
  for (const auto& [reason, count] : result.rejects.reasons(capacity)) table.add_row({reason, with_thousands(count)});
  fmt::print("{}", table.render());
}

void print_nearest_misses(const plan::SearchResult& result) {
  fmt::print("\nNo plan fits. The nearest misses:\n");
  TextTable table({"tp", "pp", "dp", "vpp", "mbs", "recompute", "sp", "dist-opt", "peak memory", "lacking"},
                  {0, 1, 2, 3, 4, 8, 9});
  for (const plan::NearMiss& miss : result.nearest_misses) {
    const core::ParallelPlan& p = miss.plan.parallel;
    table.add_row({std::to_string(p.tensor_parallel), std::to_string(p.pipeline_parallel), std::to_string(p.data_parallel),
                   std::to_string(miss.plan.virtual_stages()), std::to_string(p.micro_batch_size),
                   std::string(core::to_string(p.recompute)), p.sequence_parallel ? "on" : "off",
                   p.distributed_optimizer ? "on" : "off", gib(double(miss.peak_memory_bytes)),
                   gib(double(miss.lacking_bytes))});
  }
  fmt::print("{}", table.render());
}

// The type the plans train in: the requested one, unless the profile's device computes in one
// type only (a CPU profile: fp32), which the search then used.
std::string dtype_note(const plan::SearchRequest& request) {
  const core::DType simulated = sim::simulated_dtype(request.training.dtype, request.profile);
  if (simulated == request.training.dtype) return std::string(core::to_string(simulated));
  return fmt::format("{} (asked {}; this device computes in {} only)", core::to_string(simulated),
                     core::to_string(request.training.dtype), core::to_string(simulated));
}

void print_table(const plan::SearchRequest& request, const plan::SearchResult& result, const PlanOptions& o) {
  const int64_t capacity = request.profile.device.memory_bytes;
  const plan::SearchStats& s = result.stats;
  fmt::print("Plans for {} ({} parameters) on {} devices ({} per node, profile {}), global batch {} x {} tokens, {}, "
             "{} attention\n",
             request.model.name.empty() ? "the model" : request.model.name,
             human_count(double(core::parameter_count(request.model))), request.devices, request.devices_per_node,
             request.profile.name, request.training.global_batch_size, request.model.seq_length,
             dtype_note(request), core::to_string(request.attention_backend));
  fmt::print("Searched {} combinations: {} valid, {} fit in memory, {} simulated in full; {:.2f} s\n\n",
             with_thousands(s.combinations), with_thousands(s.valid), with_thousands(s.fitting),
             with_thousands(s.simulated), s.elapsed_s);
  if (!result.top.empty())
    print_plans(fmt::format("Best {} by {}", result.top.size(), plan::to_string(request.objective)), result.top, capacity);
  if (o.pareto && !result.pareto.empty()) {
    fmt::print("\n");
    print_plans("Pareto front: step time vs peak memory", result.pareto, capacity);
  }
  if (o.explain || result.top.empty()) print_rejects(result, capacity);
  if (result.top.empty() && !result.nearest_misses.empty()) print_nearest_misses(result);
}

core::Json ranked_json(const std::vector<plan::RankedPlan>& plans) {
  core::Json out = core::Json::array();
  for (size_t i = 0; i < plans.size(); ++i)
    out.push_back({{"rank", i + 1},
                   {"plan", core::to_json(plans[i].plan)},
                   {"prediction", sim::to_json(plans[i].prediction)},
                   {"cost_per_step", plans[i].cost_per_step}});
  return out;
}

core::Json result_json(const plan::SearchRequest& request, const plan::SearchResult& result) {
  core::Json rejects = core::Json::array();
  for (const auto& [reason, count] : result.rejects.reasons(request.profile.device.memory_bytes))
    rejects.push_back({{"reason", reason}, {"plans", count}});
  core::Json misses = core::Json::array();
  for (const plan::NearMiss& m : result.nearest_misses)
    misses.push_back({{"plan", core::to_json(m.plan)}, {"peak_memory_bytes", m.peak_memory_bytes},
                      {"lacking_bytes", m.lacking_bytes}});
  const plan::SearchStats& s = result.stats;
  return {{"format", "loom-plan-search"},
          {"version", 1},
          {"objective", plan::to_string(request.objective)},
          {"stats",
           {{"combinations", s.combinations}, {"valid", s.valid}, {"fitting", s.fitting}, {"evaluated", s.evaluated},
            {"simulated", s.simulated}, {"elapsed_s", s.elapsed_s}}},
          {"plans", ranked_json(result.top)},
          {"pareto", ranked_json(result.pareto)},
          {"rejects", rejects},
          {"nearest_misses", misses}};
}

void print_csv(const plan::SearchResult& result) {
  fmt::print("rank,tp,pp,dp,vpp,mbs,schedule,recompute,sequence_parallel,distributed_optimizer,attention_backend,"
             "overlap_grad_reduce,overlap_param_gather,tp_comm_overlap,step_time_s,tokens_per_s,mfu,peak_memory_bytes\n");
  for (size_t i = 0; i < result.top.size(); ++i) {
    const plan::RankedPlan& r = result.top[i];
    const core::ParallelPlan& p = r.plan.parallel;
    fmt::print("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6g},{:.6g},{:.6g},{}\n", i + 1, p.tensor_parallel,
               p.pipeline_parallel, p.data_parallel, r.plan.virtual_stages(), p.micro_batch_size,
               core::to_string(p.schedule), core::to_string(p.recompute), p.sequence_parallel, p.distributed_optimizer,
               core::to_string(p.attention_backend), p.overlap_grad_reduce, p.overlap_param_gather, p.tp_comm_overlap,
               r.prediction.step_time_s,
               r.prediction.tokens_per_s, r.prediction.mfu, r.prediction.peak_memory_bytes);
  }
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
  return {model_file_input(o.model), profile_file_input(o.profile), o.db};
}

}  // namespace

Command add_plan_command(CLI::App& parent) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* app = parent.add_subcommand("plan", "Search every valid plan and rank them by predicted step time");
  app->add_option("--model", o->model, "Model preset or model JSON file [default: the built-in default plan's]");
  app->add_option("--devices", o->devices, "Devices in the cluster [default: 8]");
  app->add_option("--devices-per-node", o->devices_per_node, "Devices per node [default: 8]");
  app->add_option("--profile", o->profile, "Profile name or file [default: a100-80gb-dgx]");
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
  app->add_option("--attention-backend", o->attention_backend,
                  "Attention kernel of every plan: flash (fused, as current Megatron-Core) or unfused (Megatron-LM of "
                  "2021); the overlaps of gradient reduce, parameter gather and TP communication are searched")
      ->capture_default_str();
  app->footer(
      "Examples:\n  loom plan\n"
      "  loom plan --model gpt3-175b --devices 1024 --devices-per-node 8 --profile a100-80gb-dgx \\\n"
      "            --global-batch-size 1536 --seq-length 2048 --top 10 --explain\n"
      "  loom plan --model llama3-70b --devices 256 --global-batch-size 1024 --pareto --out best.json");
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
              std::cout << result_json(request, result).dump(2) << "\n";
            } else if (o->format == "csv") {
              print_csv(result);
            } else {
              print_table(request, result, *o);
            }
            if (result.stats.valid == 0)
              throw InvalidInput("no valid plan exists for {} with global batch {} on {} devices; see the reject "
                                 "reasons above",
                                 request.model.name.empty() ? "this model" : request.model.name,
                                 request.training.global_batch_size, request.devices);
            if (result.stats.fitting == 0)
              throw Infeasible("no plan fits in {:.0f} GiB per device; the nearest misses are listed above",
                               double(request.profile.device.memory_bytes) / double(1 << 30));
            if (!o->out.empty() && !quiet && o->format == "table") fmt::print("\nBest plan written to {}\n", o->out);
          }};
}

}  // namespace loom::cli
