#include "cli/elastic_run.hpp"

#include "cli/error_relay.hpp"
#include "cli/process.hpp"
#include "core/error.hpp"
#include "core/json_reader.hpp"  // core::Json
#include "core/output_file.hpp"
#include "core/plan_json.hpp"
#include "core/store.hpp"
#include "planner/replan.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <iostream>
#include <regex>

namespace loom::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string attempt_layout(const core::Plan& plan) {
  return fmt::format("tp{} pp{} dp{} mbs{}", plan.parallel.tensor_parallel,
                     plan.parallel.pipeline_parallel, plan.parallel.data_parallel,
                     plan.parallel.micro_batch_size);
}

// A line of rank 0 that reports a trained step: a JSON line with "step", or the human line.
bool is_step_line(const std::string& line) {
  return line.starts_with("step ") || (line.starts_with("{\"step\":"));
}

// Why the attempt ended, in one line: the rank that died when Open MPI says which, else what the
// first failing rank said, else the launcher's status.
std::string failure_cause(const WatchedExit& ended, const ErrorRelay& errors,
                          double heartbeat_timeout_s) {
  if (ended.heartbeat_missed)
    return fmt::format(
        "no progress from rank 0 for {:g} s (--heartbeat-timeout); its ranks were ended",
        heartbeat_timeout_s);
  const std::string notice = errors.launcher_notice();
  const ExecutorFailure failure = executor_failure(ended.status, errors);
  if (!notice.empty() && errors.first_error().empty()) {
    // "mpirun noticed that process rank 3 with PID 0 on node vm exited on signal 9 (Killed)"
    static const std::regex killed(
        R"(process rank (\d+) with PID \d+ on node (\S+) exited on signal (\d+) \(([^)]*)\))");
    if (std::smatch m; std::regex_search(notice, m, killed))
      return fmt::format("rank {} (on {}) was killed by signal {} ({})", m[1].str(), m[2].str(),
                         m[3].str(), m[4].str());
    return notice;
  }
  return failure.reason;
}

}  // namespace

int64_t surviving_devices(const core::Plan& plan) {
  if (plan.cluster.nodes <= 1) return plan.cluster.world_size() - 1;
  return plan.cluster.world_size() - plan.cluster.devices_per_node;
}

std::filesystem::path attempt_plan_path(const std::filesystem::path& checkpoint_dir,
                                        std::optional<int64_t> run_id, int64_t attempt) {
  std::filesystem::path dir = checkpoint_dir.lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "ckpt/" names ckpt
  const std::string stem = dir.filename().string() +
                           (run_id ? fmt::format(".run-{}", *run_id) : "") +
                           fmt::format(".attempt-{}", attempt);
  std::filesystem::path path = dir.parent_path() / (stem + ".json");
  for (int n = 2; std::filesystem::exists(path); ++n)
    path = dir.parent_path() / fmt::format("{}-{}.json", stem, n);
  return path;
}

void run_elastic(const ElasticRun& r, std::string plan_path, core::Plan plan, bool resume) {
  core::Store* store = r.run_id ? r.store : nullptr;
  // Ends the run in the store (when it is still running there) and says so.
  auto end_run = [&](core::RunStatus status, const std::string& reason) -> std::string {
    if (!store) return "";
    if (store->run(*r.run_id).status == core::RunStatus::running)
      store->finish_run(*r.run_id, status, reason);
    return fmt::format("; run {} marked {}", *r.run_id, core::to_string(status));
  };
  auto record_cancel = [&] {
    try {
      end_run(core::RunStatus::cancelled, "");
    } catch (const Error&) {
      // The store was busy: tried again once the ranks have stopped.
    }
  };
  std::optional<Clock::time_point> failed_at;
  for (int64_t attempt = 1;; ++attempt) {
    const std::vector<std::string> command = r.command(plan_path, plan, resume);
    fmt::print(stderr, "loom: {}\n", fmt::join(command, " "));
    bool first_step_seen = false;
    auto on_line = [&](const std::string& line) {
      std::cout << line << std::endl;
      if (first_step_seen || !is_step_line(line)) return;
      first_step_seen = true;
      if (failed_at)
        fmt::print(
            stderr, "loom: attempt {} trained its first step {:.1f} s after attempt {} failed\n",
            attempt, std::chrono::duration<double>(Clock::now() - *failed_at).count(), attempt - 1);
    };
    ErrorRelay errors;
    WatchedExit ended;
    if (cancel_signal_received() != 0)
      ended.status = W_EXITCODE(0, cancel_signal_received());
    else
      ended =
          spawn_and_watch(command, on_line, r.settings.heartbeat_timeout_s, record_cancel, &errors);
    if (!ended.heartbeat_missed && WIFEXITED(ended.status) && WEXITSTATUS(ended.status) == 0)
      return;
    failed_at = Clock::now();
    // Whatever the launcher left of the attempt dies with it: the next attempt gets every core.
    end_leftover_processes();
    if (cancel_signal_received() != 0) {
      const std::string marked = end_run(core::RunStatus::cancelled, "");
      throw Error("cancelled by the user{}", marked);
    }
    const ExecutorFailure failure = executor_failure(ended.status, errors);
    // A rank's word that the input is wrong: fewer devices would meet the same input.
    if (failure.bad_input && !ended.heartbeat_missed) {
      const std::string marked = end_run(core::RunStatus::failed, failure.reason);
      throw InvalidInput("{}{}", failure.reason, marked);
    }
    const std::string cause = failure_cause(ended, errors, r.settings.heartbeat_timeout_s);
    if (store && store->attempts(*r.run_id).back().status == core::RunStatus::running)
      store->finish_attempt(*r.run_id, core::RunStatus::failed, cause);
    fmt::print(stderr, "loom: attempt {} on {} device(s) failed: {}\n", attempt,
               plan.cluster.world_size(), cause);

    // The run stops here, failed, with this reason.
    auto give_up = [&](const std::string& why) {
      const std::string reason = fmt::format("attempt {} failed ({}); {}", attempt, cause, why);
      const std::string marked = end_run(core::RunStatus::failed, reason);
      throw Error("{}{}", reason, marked);
    };
    const int64_t devices = surviving_devices(plan);
    if (devices < r.settings.min_devices)
      give_up(fmt::format("{} device(s) left, fewer than --min-devices {}", devices,
                          r.settings.min_devices));
    plan::ReplanRequest request;
    request.checkpoint_dir = r.checkpoint_dir;
    request.devices = devices;
    request.profile = r.profile;
    // Another global batch would train another run: its losses could not continue this one's.
    request.keep_global_batch = true;
    std::optional<plan::ReplanResult> replanned;
    try {
      replanned = plan::replan(request);
    } catch (const Error& e) {
      give_up(fmt::format("cannot re-plan for {} device(s): {}", devices, e.what()));
    }
    if (!replanned->best)
      give_up(fmt::format("no plan of the run's model fits in memory on {} device(s)", devices));
    const core::Plan next = *replanned->best;
    const std::filesystem::path next_path =
        attempt_plan_path(r.checkpoint_dir, r.run_id, attempt + 1);
    core::write_output_file(next_path, core::to_json(next).dump(2) + "\n");
    fmt::print(stderr,
               "loom: attempt {}: {} on {} device(s), re-planned from {} and resuming after step "
               "{}; plan {}\n",
               attempt + 1, attempt_layout(next), next.cluster.world_size(), attempt_layout(plan),
               replanned->checkpoint.step, next_path.string());
    try {
      r.check(next_path.string(), true);
    } catch (const Error& e) {
      give_up(fmt::format("the re-planned attempt cannot start: {}", e.what()));
    }
    if (store) {
      const auto [plan_id, prediction_id] = r.store_plan(next, next_path.string());
      core::RunAttemptRow row;
      row.run_id = *r.run_id;
      row.plan_id = plan_id;
      row.prediction_id = prediction_id;
      row.devices = next.cluster.world_size();
      row.start_step = replanned->checkpoint.step + 1;
      store->begin_attempt(row);
    }
    if (r.jsonl)
      std::cout << core::Json{{"event", "attempt"},
                              {"run_id", r.run_id ? core::Json(*r.run_id) : core::Json(nullptr)},
                              {"attempt", attempt + 1},
                              {"devices", next.cluster.world_size()},
                              {"plan", next_path.string()},
                              {"resume_after_step", replanned->checkpoint.step},
                              {"cause", cause}}
                       .dump()
                << std::endl;
    plan_path = next_path.string();
    plan = next;
    resume = true;
  }
}

}  // namespace loom::cli
