#include "planner/log_import.hpp"

#include "core/error.hpp"
#include "core/json_reader.hpp"  // core::Json
#include "core/plan_json.hpp"    // read_plan_file
#include "core/profile.hpp"      // resolve_profile
#include "core/rank_layout.hpp"  // pipeline rank of a Megatron rank
#include "core/store_rows.hpp"   // plan_row
#include "core/train_spec.hpp"   // warmup_steps
#include "planner/llmc_log.hpp"
#include "planner/megatron_log.hpp"
#include "planner/megatron_plan.hpp"
#include "simulator/prediction.hpp"
#include "simulator/run_comparison.hpp"  // steady_step_time_s

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

namespace loom::plan {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Megatron's timers (megatron/core/pipeline_parallel/schedules.py, megatron/training/training.py,
// megatron/core/distributed/finalize_model_grads.py) in Loom's categories. Megatron times no
// tensor-parallel communication or recompute of its own (they run inside forward- and
// backward-compute), so those stay not measured. Its receive timers include waiting for the
// neighbouring stage, as Loom's "pp comm + bubble/wait" does.
const std::map<std::string, std::vector<std::string>>& timer_categories() {
  static const std::map<std::string, std::vector<std::string>> categories = {
      {"forward_s", {"forward-compute"}},
      {"backward_s", {"backward-compute"}},
      {"pp_comm_s",
       {"forward-recv", "forward-send", "backward-recv", "backward-send", "forward-send-forward-recv",
        "forward-send-backward-recv", "backward-send-forward-recv", "backward-send-backward-recv",
        "forward-backward-send-forward-backward-recv"}},
      // all-grads-sync since core_r0.4; backward-params-all-reduce in v2.x.
      {"dp_comm_s", {"all-grads-sync", "params-all-gather", "backward-params-all-reduce"}},
      {"optimizer_s", {"optimizer"}},
  };
  return categories;
}

std::string resolved_profile_name(const LogImportOptions& options, const std::optional<core::Plan>& given_plan) {
  if (!options.profile.empty()) return options.profile;
  if (given_plan && !given_plan->cluster.profile.empty()) return given_plan->cluster.profile;
  return kDefaultImportProfile;
}

// The prediction stored beside the run, as `loom run` stores one; a profile the simulator cannot
// use for this plan (a dtype without a peak) leaves the run without one rather than unimported.
std::optional<core::PredictionRow> predict(const core::Plan& plan, const core::Profile& profile) {
  try {
    sim::SimulationOptions options;
    options.record_timeline = false;
    return sim::prediction_row(0, sim::simulate(plan, profile, options));
  } catch (const loom::Error&) {
    return std::nullopt;
  }
}

LogImportResult store_run(core::Store& store, const core::Plan& plan, core::RunRow run,
                          const std::vector<core::StepRow>& steps, const std::vector<core::RankStatRow>& stats,
                          LogImportResult result) {
  const core::Profile profile = core::resolve_profile(result.profile_name);
  run.profile_name = result.profile_name;
  run.status = result.status;
  if (!result.reason.empty()) run.reason = result.reason;
  run.host = result.file_name;
  const std::string plan_name = fmt::format("imported from {}", result.file_name);
  result.run_id = store.insert_finished_run(core::plan_row(plan, plan_name), predict(plan, profile), run, steps, stats);
  result.plan_id = store.run(result.run_id).plan_id;
  result.steps = int64_t(steps.size());
  result.steady_step_time_s = sim::steady_step_time_s(steps);
  return result;
}

// One logged step as the store keeps it. A step without a good loss (none logged, NaN, or its update
// skipped) is stored with a NaN loss but keeps its time: the iterations took it.
core::StepRow imported_step(int64_t step_number, std::optional<double> good_loss, double step_time_s,
                            int64_t tokens_per_step, std::optional<double> learning_rate,
                            std::optional<double> grad_norm) {
  core::StepRow step;
  step.step = step_number;
  step.loss = good_loss.value_or(kNaN);
  step.step_time_s = step_time_s;
  step.tokens_per_s = double(tokens_per_step) / step_time_s;
  step.learning_rate = learning_rate.value_or(kNaN);
  if (grad_norm && std::isfinite(*grad_norm)) step.grad_norm = *grad_norm;
  return step;
}

std::string absolute_text(const std::string& path) {
  std::error_code error;
  const auto absolute = std::filesystem::absolute(path, error);
  return error ? path : absolute.string();
}

}  // namespace

LogImportResult import_megatron_log(core::Store& store, const std::string& path, const LogImportOptions& options) {
  const MegatronLog log = read_megatron_log(path);
  LogImportResult result;
  result.source = "megatron";
  result.variant = log.variant;
  result.file_name = log.file_name;
  result.ignored_lines = log.ignored_lines;

  std::optional<core::Plan> given;
  if (!options.plan_path.empty()) {
    given = core::read_plan_file(options.plan_path);
    check_plan_matches_megatron_arguments(*given, log, options.plan_path);
  }
  result.profile_name = resolved_profile_name(options, given);
  core::Plan plan;
  if (given) {
    plan = *given;
  } else {
    MegatronPlanOptions rebuild;
    rebuild.devices_per_node = options.devices_per_node;
    rebuild.profile = result.profile_name;
    rebuild.model_name = std::filesystem::path(path).stem().string();
    plan = plan_from_megatron_arguments(log, rebuild);
    result.plan_from_arguments = true;
  }
  const int64_t world = plan.cluster.world_size();
  const int64_t log_interval = [&] {
    const auto found = log.arguments.find("log_interval");
    const auto parsed = found == log.arguments.end() ? std::nullopt : parse_int(found->second);
    if (parsed && *parsed > 0) return *parsed;
    return log.iterations.size() > 1 ? log.iterations[1].iteration - log.iterations[0].iteration
                                     : log.iterations[0].iteration;
  }();

  std::vector<core::StepRow> steps;
  int64_t skipped = 0, nans = 0;
  for (size_t i = 0; i < log.iterations.size(); ++i) {
    const MegatronIteration& it = log.iterations[i];
    const int64_t span = i == 0 ? log_interval : it.iteration - log.iterations[i - 1].iteration;
    skipped += it.skipped_iterations;
    nans += it.nan_iterations;
    const bool no_good_iteration =
        it.nan_iterations > 0 || it.skipped_iterations + it.nan_iterations >= span || !it.lm_loss;
    if (no_good_iteration) ++result.steps_without_loss;
    const int64_t batch = it.global_batch_size.value_or(plan.training.global_batch_size);
    steps.push_back(imported_step(it.iteration, no_good_iteration ? std::nullopt : it.lm_loss,
                                  it.elapsed_s_per_iteration, batch * plan.model.seq_length, it.learning_rate,
                                  it.grad_norm));
  }
  const MegatronIteration& last = log.iterations.back();
  result.first_iteration = log.iterations.front().iteration;
  result.last_iteration = last.iteration;
  result.total_iterations = last.train_iterations;
  if (last.train_iterations && last.iteration < *last.train_iterations) {
    result.status = core::RunStatus::failed;
    result.reason = fmt::format("the log ends at iteration {} of {}", last.iteration, *last.train_iterations);
  }

  // The timer table: Megatron prints each timer's max over all ranks (the rank that held the step
  // up); the same per-iteration figures go to every rank's statistics.
  const int64_t warmup = core::warmup_steps(int64_t(log.iterations.size()));
  core::Json time_by_category = core::Json::object();
  int64_t timed_steps = 0;
  for (size_t i = size_t(warmup); i < log.iterations.size(); ++i) {
    const auto& timers = log.iterations[i].timers;
    if (timers.empty()) continue;
    ++timed_steps;
    for (const auto& [category, names] : timer_categories()) {
      bool present = false;
      double seconds = 0;
      for (const std::string& name : names) {
        const auto found = timers.find(name);
        if (found == timers.end()) continue;
        present = true;
        seconds += found->second.max_s;
      }
      if (present) time_by_category[category] = time_by_category.value(category, 0.0) + seconds;
    }
  }
  for (const auto& [category, seconds] : time_by_category.items()) result.measured_categories.push_back(category);

  std::map<int64_t, MegatronMemoryReport> peak_by_rank;
  for (const MegatronMemoryReport& report : log.memory) {
    if (report.rank >= world)
      throw InvalidInput("{}:{}: memory reported by rank {}, but the plan has {} ranks", log.file_name, report.line,
                         report.rank, world);
    auto [entry, inserted] = peak_by_rank.try_emplace(report.rank, report);
    if (!inserted && report.max_allocated_bytes >= entry->second.max_allocated_bytes) entry->second = report;
  }
  const core::RankLayout layout = core::RankLayout::of(plan.parallel);
  auto stats_for = [&](int64_t rank) {
    core::Json stats{{"pipeline_rank", layout.coords(rank).pipeline}, {"source", "megatron"}};
    if (timed_steps > 0) {
      stats["time_by_category"] = time_by_category;
      stats["measured_steps"] = timed_steps;
      stats["warmup_steps"] = warmup;
      stats["time_scope"] = "max over ranks";
    }
    return stats;
  };
  std::vector<core::RankStatRow> stats;
  for (const auto& [rank, report] : peak_by_rank) {
    core::Json json = stats_for(rank);
    json["allocated_bytes"] = report.allocated_bytes;
    if (report.max_reserved_bytes) json["max_reserved_bytes"] = *report.max_reserved_bytes;
    if (report.after_iterations) json["after_iterations"] = *report.after_iterations;
    stats.push_back({rank, report.max_allocated_bytes, json.dump()});
    result.peak_memory_bytes = std::max(result.peak_memory_bytes.value_or(0), report.max_allocated_bytes);
  }
  result.ranks_with_memory = int64_t(stats.size());
  // Timers without memory reports: on the last rank, which printed them.
  if (stats.empty() && timed_steps > 0) stats.push_back({world - 1, std::nullopt, stats_for(world - 1).dump()});

  core::RunRow run;
  run.backend = "cuda";
  run.source = "megatron";
  run.run_json = core::Json{{"source_file", absolute_text(path)},
                            {"format", log.variant},
                            {"timer_format", log.timer_format},
                            {"ignored_lines", log.ignored_lines},
                            {"log_interval", log_interval},
                            {"skipped_iterations", skipped},
                            {"nan_iterations", nans},
                            {"steps_without_loss", result.steps_without_loss},
                            {"plan_from_arguments", result.plan_from_arguments}}
                     .dump();
  return store_run(store, plan, run, steps, stats, result);
}

LogImportResult import_llmc_log(core::Store& store, const std::string& path, const LogImportOptions& options) {
  if (options.plan_path.empty())
    throw InvalidInput("importing llm.c's log {} needs the run's plan (--plan PLAN.json): llm.c does not print its "
                       "model and layout in a form Loom can rebuild a plan from",
                       path);
  const LlmcLog log = read_llmc_log(path);
  const core::Plan plan = core::read_plan_file(options.plan_path);
  LogImportResult result;
  result.source = "llmc";
  result.variant = log.variant;
  result.file_name = log.file_name;
  result.ignored_lines = log.ignored_lines;
  result.profile_name = resolved_profile_name(options, plan);

  // train_gpt2.cu's parameter table, where printed, must describe the plan's run.
  auto check = [&](const char* key, const char* what, int64_t planned) {
    const auto found = log.parameters.find(key);
    if (found == log.parameters.end()) return;
    const auto logged = parse_int(found->second);
    if (logged && *logged != planned)
      throw InvalidInput("{} is not the plan of {}'s run: {} is {} in the plan but {} in the log ('{}')",
                         options.plan_path, log.file_name, what, planned, *logged, key);
  };
  check("num_processes", "the world size", plan.cluster.world_size());
  check("micro batch size B", "the micro-batch size", plan.parallel.micro_batch_size);
  check("sequence length T", "the sequence length", plan.model.seq_length);
  check("total batch size", "the tokens per step", plan.training.global_batch_size * plan.model.seq_length);
  check("num_layers L", "num-layers", plan.model.num_layers);
  check("num_heads NH", "num-attention-heads", plan.model.num_attention_heads);
  check("channels C", "hidden-size", plan.model.hidden_size);

  std::vector<core::StepRow> steps;
  int64_t skipped = 0;
  for (const LlmcStep& s : log.steps) {
    const bool bad = s.update_skipped || !std::isfinite(s.loss);
    if (s.update_skipped) ++skipped;
    if (bad) ++result.steps_without_loss;
    steps.push_back(imported_step(s.step, bad ? std::nullopt : std::optional<double>(s.loss), s.step_time_s,
                                  plan.training.global_batch_size * plan.model.seq_length, s.learning_rate,
                                  s.grad_norm));
  }
  const LlmcStep& last = log.steps.back();
  result.first_iteration = log.steps.front().step;
  result.last_iteration = last.step;
  result.total_iterations = last.total_steps;
  if (last.total_steps && last.step < *last.total_steps) {
    result.status = core::RunStatus::failed;
    result.reason = fmt::format("the log ends at step {} of {}", last.step, *last.total_steps);
  }
  core::RunRow run;
  run.backend = log.variant == "llmc-c" ? "cpu" : "cuda";
  run.source = "llmc";
  run.run_json = core::Json{{"source_file", absolute_text(path)},
                            {"format", log.variant},
                            {"ignored_lines", log.ignored_lines},
                            {"log_interval", 1},
                            {"skipped_updates", skipped},
                            {"steps_without_loss", result.steps_without_loss}}
                     .dump();
  return store_run(store, plan, run, steps, {}, result);
}

DetectedLog detect_log(const std::string& path) {
  const LogText text = read_log_text(path);
  std::string megatron_problem;
  try {
    const MegatronLog log = parse_megatron_log(text);
    return {"megatron", log.arguments.empty()};
  } catch (const InvalidInput& e) {
    megatron_problem = e.what();
  }
  try {
    parse_llmc_log(text);
    return {"llmc", true};
  } catch (const InvalidInput& e) {
    throw InvalidInput("{} is neither a Megatron-LM log ({}) nor an llm.c log ({})", text.name, megatron_problem,
                       e.what());
  }
}

}  // namespace loom::plan
