// The ranking of a plan search as `loom plan` and `loom replan` print it: a table, JSON or CSV.

#include "cli/plan_ranking.hpp"

#include "cli/format.hpp"
#include "core/model_arithmetic.hpp"
#include "core/plan_json.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace loom::cli {
namespace {

std::string seconds(double s) {
  return s >= 1.0 ? fmt::format("{:.3f} s", s) : fmt::format("{:.2f} ms", s * 1e3);
}
std::string gib(double bytes) {
  return fmt::format("{:.1f} GiB", bytes / double(int64_t(1) << 30));
}

// Megatron-Core's overlaps a plan turns on, short for a table cell: "grad+param+tp", "none".
std::string overlaps_of(const core::ParallelPlan& p) {
  std::string out;
  for (const auto& [on, name] :
       {std::pair{p.overlap_grad_reduce, "grad"}, std::pair{p.overlap_param_gather, "param"},
        std::pair{p.tp_comm_overlap, "tp"}})
    if (on) out += (out.empty() ? "" : "+") + std::string(name);
  return out.empty() ? "none" : out;
}

// The layers of each virtual stage when the split is uneven ("7,9,9,7"), else "even".
std::string layers_of(const core::Plan& plan) {
  if (plan.even_layer_split()) return "even";
  return fmt::format("{}", fmt::join(plan.virtual_stage_layers(), ","));
}

// On a mixed cluster, the device group of each pipeline rank, as runs: "0-1:a100-80gb-dgx 2-3:h100-80gb-dgx".
std::string groups_of(const core::Plan& plan) {
  const std::vector<int64_t> groups = plan.pipeline_rank_groups();
  const std::vector<core::DeviceGroup> device_groups = plan.cluster.device_groups();
  std::string out;
  for (size_t begin = 0; begin < groups.size();) {
    size_t end = begin;
    while (end + 1 < groups.size() && groups[end + 1] == groups[begin]) ++end;
    const std::string ranks = begin == end ? std::to_string(begin) : fmt::format("{}-{}", begin, end);
    out += fmt::format("{}{}:{}", out.empty() ? "" : " ", ranks, device_groups[size_t(groups[begin])].profile);
    begin = end + 1;
  }
  return out;
}

// The same for CSV, with spaces between the counts ("7 9 9 7") so that the row keeps its fields.
std::string layers_in_csv(const core::Plan& plan) {
  std::string text = layers_of(plan);
  std::replace(text.begin(), text.end(), ',', ' ');
  return text;
}

std::vector<std::string> row_cells(int64_t rank, const plan::RankedPlan& r, int64_t capacity, bool mixed) {
  const core::ParallelPlan& p = r.plan.parallel;
  std::vector<std::string> cells = {std::to_string(rank),
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
          gib(double(capacity - r.prediction.peak_memory_bytes)),
          layers_of(r.plan)};
  if (mixed) cells.push_back(groups_of(r.plan));
  return cells;
}

const std::vector<std::string> kColumns = {
    "#",  "tp",       "pp",      "dp",        "vpp",      "mbs", "schedule",    "recompute",
    "sp", "dist-opt", "overlap", "step time", "tokens/s", "MFU", "peak memory", "headroom", "layers"};
const std::vector<size_t> kNumeric = {0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15};

void print_plans(const std::string& title, const std::vector<plan::RankedPlan>& plans,
                 int64_t capacity, bool mixed) {
  std::vector<std::string> columns = kColumns;
  if (mixed) columns.push_back("pipeline ranks:group");
  TextTable table(columns, kNumeric);
  for (size_t i = 0; i < plans.size(); ++i)
    table.add_row(row_cells(int64_t(i) + 1, plans[i], capacity, mixed));
  fmt::print("{}\n{}", title, table.render());
}

void print_rejects(const plan::SearchResult& result, int64_t capacity) {
  fmt::print("\nRejected combinations, by reason\n");
  TextTable table({"reason", "plans"}, {1});
  for (const auto& [reason, count] : result.rejects.reasons(capacity))
    table.add_row({reason, with_thousands(count)});
  fmt::print("{}", table.render());
}

void print_nearest_misses(const plan::SearchResult& result) {
  fmt::print("\nNo plan fits. The nearest misses:\n");
  TextTable table(
      {"tp", "pp", "dp", "vpp", "mbs", "recompute", "sp", "dist-opt", "peak memory", "lacking"},
      {0, 1, 2, 3, 4, 8, 9});
  for (const plan::NearMiss& miss : result.nearest_misses) {
    const core::ParallelPlan& p = miss.plan.parallel;
    table.add_row({std::to_string(p.tensor_parallel), std::to_string(p.pipeline_parallel),
                   std::to_string(p.data_parallel), std::to_string(miss.plan.virtual_stages()),
                   std::to_string(p.micro_batch_size), std::string(core::to_string(p.recompute)),
                   p.sequence_parallel ? "on" : "off", p.distributed_optimizer ? "on" : "off",
                   gib(double(miss.peak_memory_bytes)), gib(double(miss.lacking_bytes))});
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

// The cluster for the heading: "profile a100-80gb-dgx", or a mixed cluster's groups in pipeline order.
std::string cluster_note(const plan::SearchRequest& request) {
  if (request.groups.empty()) return fmt::format("profile {}", request.profile.name);
  std::vector<std::string> groups;
  for (const core::DeviceGroup& g : request.groups) groups.push_back(fmt::format("{} x {}", g.nodes, g.profile));
  return fmt::format("mixed: {} nodes along the pipeline", fmt::join(groups, " then "));
}


}  // namespace

void print_search_table(const plan::SearchRequest& request, const plan::SearchResult& result,
                        bool pareto, bool explain) {
  const int64_t capacity = request.device_memory_bytes();
  const bool mixed = !request.groups.empty();
  const plan::SearchStats& s = result.stats;
  fmt::print(
      "Plans for {} ({} parameters) on {} devices ({} per node, {}), global batch {} x {} "
      "tokens, {}, "
      "{} attention{}\n",
      request.model.name.empty() ? "the model" : request.model.name,
      human_count(double(core::parameter_count(request.model))), request.devices,
      request.devices_per_node, cluster_note(request), request.training.global_batch_size,
      request.model.seq_length, dtype_note(request), core::to_string(request.attention_backend),
      request.search_layer_splits ? "" : ", even layer splits only");
  fmt::print(
      "Searched {} combinations: {} valid, {} fit in memory, {} simulated in full; {:.2f} s\n\n",
      with_thousands(s.combinations), with_thousands(s.valid), with_thousands(s.fitting),
      with_thousands(s.simulated), s.elapsed_s);
  if (!result.top.empty())
    print_plans(fmt::format("Best {} by {}", result.top.size(), plan::to_string(request.objective)),
                result.top, capacity, mixed);
  if (pareto && !result.pareto.empty()) {
    fmt::print("\n");
    print_plans("Pareto front: step time vs peak memory", result.pareto, capacity, mixed);
  }
  if (explain || result.top.empty()) print_rejects(result, capacity);
  if (result.top.empty() && !result.nearest_misses.empty()) print_nearest_misses(result);
}

namespace {

core::Json ranked_json(const std::vector<plan::RankedPlan>& plans) {
  core::Json out = core::Json::array();
  for (size_t i = 0; i < plans.size(); ++i)
    out.push_back({{"rank", i + 1},
                   {"plan", core::to_json(plans[i].plan)},
                   {"prediction", sim::to_json(plans[i].prediction)},
                   {"cost_per_step", plans[i].cost_per_step}});
  return out;
}

}  // namespace

core::Json search_result_json(const plan::SearchRequest& request,
                              const plan::SearchResult& result) {
  core::Json rejects = core::Json::array();
  for (const auto& [reason, count] : result.rejects.reasons(request.device_memory_bytes()))
    rejects.push_back({{"reason", reason}, {"plans", count}});
  core::Json misses = core::Json::array();
  for (const plan::NearMiss& m : result.nearest_misses)
    misses.push_back({{"plan", core::to_json(m.plan)},
                      {"peak_memory_bytes", m.peak_memory_bytes},
                      {"lacking_bytes", m.lacking_bytes}});
  const plan::SearchStats& s = result.stats;
  return {{"format", "loom-plan-search"},
          {"version", 1},
          {"objective", plan::to_string(request.objective)},
          {"stats",
           {{"combinations", s.combinations},
            {"valid", s.valid},
            {"fitting", s.fitting},
            {"evaluated", s.evaluated},
            {"simulated", s.simulated},
            {"elapsed_s", s.elapsed_s}}},
          {"plans", ranked_json(result.top)},
          {"pareto", ranked_json(result.pareto)},
          {"rejects", rejects},
          {"nearest_misses", misses}};
}

void print_search_csv(const plan::SearchResult& result) {
  fmt::print(
      "rank,tp,pp,dp,vpp,mbs,schedule,recompute,sequence_parallel,distributed_optimizer,attention_"
      "backend,"
      "overlap_grad_reduce,overlap_param_gather,tp_comm_overlap,step_time_s,tokens_per_s,mfu,peak_"
      "memory_bytes,layer_split\n");
  for (size_t i = 0; i < result.top.size(); ++i) {
    const plan::RankedPlan& r = result.top[i];
    const core::ParallelPlan& p = r.plan.parallel;
    fmt::print("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6g},{:.6g},{:.6g},{},{}\n", i + 1,
               p.tensor_parallel, p.pipeline_parallel, p.data_parallel, r.plan.virtual_stages(),
               p.micro_batch_size, core::to_string(p.schedule), core::to_string(p.recompute),
               p.sequence_parallel, p.distributed_optimizer, core::to_string(p.attention_backend),
               p.overlap_grad_reduce, p.overlap_param_gather, p.tp_comm_overlap,
               r.prediction.step_time_s, r.prediction.tokens_per_s, r.prediction.mfu,
               r.prediction.peak_memory_bytes, layers_in_csv(r.plan));
  }
}

}  // namespace loom::cli
