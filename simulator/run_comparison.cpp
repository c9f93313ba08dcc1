#include "simulator/run_comparison.hpp"

#include "core/error.hpp"
#include "core/plan_json.hpp"
#include "core/train_spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>

namespace loom::sim {
namespace {

// The executor's time per category (seconds per step, averaged over the ranks of one pipeline
// stage), and the warm-up those ranks excluded.
struct StageCategories {
  std::map<std::string, double> seconds_per_step;
  std::optional<int64_t> warmup_steps;
};

// An imported log's timer table holds each timer's maximum over all ranks, copied to every rank
// that reported memory: where no rank of the compared stage reported, any rank's copy serves.
StageCategories measured_categories(const std::vector<core::RankStatRow>& ranks, int64_t stage, bool imported) {
  StageCategories out;
  int64_t counted = 0;
  bool stage_has_times = false;
  for (const core::RankStatRow& rank : ranks) {
    const core::Json stats = core::Json::parse(rank.stats_json);
    if (stats.value("pipeline_rank", -1) == stage && stats.contains("time_by_category")) stage_has_times = true;
  }
  for (const core::RankStatRow& rank : ranks) {
    const core::Json stats = core::Json::parse(rank.stats_json);
    if (!stats.contains("time_by_category")) continue;
    if (stats.value("pipeline_rank", -1) != stage && !(imported && !stage_has_times)) continue;
    const double steps = double(std::max<int64_t>(1, stats.value("measured_steps", int64_t(1))));
    out.warmup_steps = stats.value("warmup_steps", int64_t(0));
    for (const auto& [name, seconds] : stats.at("time_by_category").items())
      out.seconds_per_step[name] += seconds.get<double>() / steps;
    ++counted;
  }
  for (auto& [name, value] : out.seconds_per_step) value /= double(std::max<int64_t>(1, counted));
  return out;
}

}  // namespace

std::vector<core::StepRow> attempt_steps(const std::vector<core::StepRow>& steps,
                                         const std::vector<core::RunAttemptRow>& attempts, int64_t attempt) {
  if (attempts.size() <= 1) return steps;  // a run's only attempt owns all its steps
  const auto at = std::find_if(attempts.begin(), attempts.end(),
                               [attempt](const core::RunAttemptRow& a) { return a.attempt == attempt; });
  if (at == attempts.end() || !at->start_step) return {};
  const auto next = std::next(at);
  // A later attempt that resumed from an earlier checkpoint logged the steps after it again.
  const std::optional<int64_t> next_start = next == attempts.end() ? std::nullopt : next->start_step;
  std::vector<core::StepRow> out;
  for (const core::StepRow& step : steps)
    if (step.step >= *at->start_step && (!at->end_step || step.step <= *at->end_step) &&
        (!next_start || step.step < *next_start))
      out.push_back(step);
  return out;
}

RunComparison compare_run(core::Store& store, int64_t run_id, const std::string& profile_override,
                          std::optional<int64_t> attempt) {
  const core::RunRow run = store.run(run_id);
  const std::vector<core::RunAttemptRow> attempts = store.attempts(run.id);
  RunComparison c;
  c.run_id = run.id;
  c.status = run.status;
  c.attempts = std::max<int64_t>(1, int64_t(attempts.size()));
  c.attempt = attempt.value_or(c.attempts);
  if (c.attempt < 1 || c.attempt > c.attempts)
    throw InvalidInput("run {} has {} attempt{}; there is no attempt {}", run.id, c.attempts,
                       c.attempts == 1 ? "" : "s", c.attempt);
  int64_t plan_id = run.plan_id;
  if (!attempts.empty()) {
    const core::RunAttemptRow& chosen = attempts[size_t(c.attempt - 1)];
    plan_id = chosen.plan_id;
    c.status = chosen.status;
    c.cause = chosen.cause;
  }
  const std::vector<core::StepRow> steps = attempt_steps(store.steps(run.id), attempts, c.attempt);
  const bool last_attempt = c.attempt == c.attempts;
  const std::vector<core::RankStatRow> ranks = last_attempt ? store.rank_stats(run.id) : std::vector<core::RankStatRow>{};
  if (steps.empty())
    throw InvalidInput("run {}{} has no steps recorded yet (status {}); compare it once it has trained a step", run.id,
                       c.attempts > 1 ? fmt::format(" attempt {}", c.attempt) : "", core::to_string(c.status));
  const core::Plan plan = core::plan_from_json(core::Json::parse(store.plan(plan_id).plan_json));

  c.profile_name = !profile_override.empty() ? profile_override : run.profile_name.value_or(plan.cluster.profile);
  SimulationOptions options;
  options.record_timeline = false;
  if (plan.cluster.mixed() && profile_override.empty()) {
    // Each device group on its own profile.
    const std::vector<core::Profile> profiles = core::resolve_group_profiles(plan.cluster);
    c.profile_name = joined_profile_names(profiles);
    c.prediction = simulate(plan, profiles, options);
  } else if (plan.cluster.mixed()) {
    // One profile given for the comparison (e.g. measured on this machine): every group runs on it.
    const core::Profile profile = core::resolve_profile(c.profile_name);
    c.prediction = simulate(plan, std::vector<core::Profile>(plan.cluster.groups.size(), profile), options);
  } else {
    c.prediction = simulate(plan, core::resolve_profile(c.profile_name), options);
  }
  const Prediction& p = c.prediction;
  c.compared_pipeline_rank = p.critical_pipeline_rank;
  c.runtime_reserve_bytes = double(p.memory.front().other_bytes);
  c.stored_steps = int64_t(steps.size());

  c.source = run.source;
  const bool imported = run.source != "loom";
  const StageCategories measured = measured_categories(ranks, p.critical_pipeline_rank, imported);
  // The executor's own count of warm-up steps, where the compared stage reported one.
  c.warmup_steps = measured.warmup_steps.value_or(warmup_steps_of(steps));
  c.measured_steps = c.stored_steps - c.warmup_steps;
  const double step_time = steady_step_time_s(steps);
  const double tokens = double(plan.training.global_batch_size * plan.model.seq_length);
  c.has_rank_statistics = !ranks.empty();
  // A category Loom's ranks did not report took no time; without their statistics it is unknown.
  // An imported log measured only what its framework times: a category it lacks is not measured.
  auto m = [&](const char* key) -> std::optional<double> {
    if (!c.has_rank_statistics) return std::nullopt;
    const auto found = measured.seconds_per_step.find(key);
    if (found != measured.seconds_per_step.end()) return found->second;
    if (imported) return std::nullopt;
    return 0.0;
  };
  const Breakdown& b = p.breakdown;
  c.rows = {
      {"step time", "s", p.step_time_s, step_time, std::nullopt},
      {"tokens/s", "tokens/s", p.tokens_per_s, step_time > 0 ? tokens / step_time : 0.0, std::nullopt},
      {"forward", "s", b.forward_s, m("forward_s"), std::nullopt},
      {"backward", "s", b.backward_s, m("backward_s"), std::nullopt},
      {"recompute", "s", b.recompute_s, m("recompute_s"), std::nullopt},
      // Communication that ran beside compute (the overlaps) held nothing up: both sides count
      // only the exposed part, the time a rank waited for its collectives.
      {"tp comm (exposed)", "s", b.tp_comm_exposed_s, m("tp_comm_s"), std::nullopt},
      // The executor cannot tell a transfer from waiting for the other stage.
      {"pp comm + bubble/wait", "s", b.pp_comm_exposed_s + b.pp_bubble_s, m("pp_comm_s"), std::nullopt},
      {"dp comm (exposed)", "s", b.dp_comm_exposed_s, m("dp_comm_s"), std::nullopt},
      {"optimizer", "s", b.optimizer_s, m("optimizer_s"), std::nullopt},
  };
  for (ComparisonRow& row : c.rows)
    if (row.measured) row.error_percent = error_percent(row.predicted, *row.measured);
  // The wait for the slowest rank of a group before its collective, which the executor times
  // apart from the transfer (dp comm and tp comm above are then transfers alone). The simulator's
  // ranks are identical: it predicts no wait, and an error against a predicted 0 says nothing.
  // Runs stored before the executor timed waits have none: not measured, and their comm rows
  // hold the waits.
  auto wait = [&](const char* key) -> std::optional<double> {
    if (!c.has_rank_statistics || !measured.seconds_per_step.contains(key)) return std::nullopt;
    return measured.seconds_per_step.at(key);
  };
  c.rows.push_back({"dp wait (slowest rank)", "s", 0.0, wait("dp_wait_s"), std::nullopt});
  c.rows.push_back({"tp wait (slowest rank)", "s", 0.0, wait("tp_wait_s"), std::nullopt});

  for (const core::RankStatRow& rank : ranks) {
    if (!rank.peak_memory_bytes) continue;  // an imported rank that reported times but no memory
    RankMemoryComparison r;
    r.rank = rank.rank;
    r.pipeline_rank = pipeline_rank_of(rank);
    r.predicted_peak_bytes = predicted_tensor_bytes(p, r.pipeline_rank);
    r.measured_peak_bytes = double(rank.peak_memory_bytes.value_or(0));
    r.error_percent = error_percent(r.predicted_peak_bytes, r.measured_peak_bytes);
    c.ranks.push_back(r);
  }
  return c;
}

int64_t warmup_steps_of(const std::vector<core::StepRow>& steps) { return core::warmup_steps(int64_t(steps.size())); }

double steady_step_time_s(const std::vector<core::StepRow>& steps) {
  const size_t first = size_t(warmup_steps_of(steps));
  double total = 0;
  for (size_t i = first; i < steps.size(); ++i) total += steps[i].step_time_s;
  return steps.size() > first ? total / double(steps.size() - first) : 0.0;
}

double predicted_tensor_bytes(const Prediction& prediction, int64_t pipeline_rank) {
  if (pipeline_rank < 0 || size_t(pipeline_rank) >= prediction.memory.size())
    throw InvalidInput("pipeline rank {} is not a stage of the prediction ({} stages)", pipeline_rank,
                       prediction.memory.size());
  const StageMemory& memory = prediction.memory[size_t(pipeline_rank)];
  return double(memory.total_bytes() - memory.other_bytes);
}

int64_t pipeline_rank_of(const core::RankStatRow& rank) {
  return core::Json::parse(rank.stats_json).value("pipeline_rank", int64_t(0));
}

double error_percent(double predicted, double measured) {
  return measured != 0 ? 100.0 * (predicted - measured) / measured : 0.0;
}

}  // namespace loom::sim
