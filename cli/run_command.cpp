// `loom run PLAN.json`: launches the executor (`loom-exec run`) on the plan's ranks through mpirun
// or srun, records the run in the store, and marks it failed if the ranks do not finish — as
// cancelled when SIGINT or SIGTERM stopped them (Ctrl-C, or the GUI's Cancel).
// With --elastic, a rank that dies is survived instead: cli/elastic_run re-plans and continues.

#include "cli/command.hpp"
#include "cli/elastic_run.hpp"
#include "cli/error_relay.hpp"
#include "cli/launch.hpp"
#include "cli/output_targets.hpp"
#include "cli/plan_profiles.hpp"
#include "cli/process.hpp"
#include "core/error.hpp"
#include "core/output_file.hpp"
#include "core/plan_json.hpp"
#include "core/store.hpp"
#include "core/store_rows.hpp"
#include "simulator/prediction.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <thread>
#include <tuple>

namespace loom::cli {
namespace {

struct RunOptions {
  std::string plan_path, data, db, checkpoint_dir, launcher = "mpirun", backend = "cpu", save_model, init_from, profile;
  std::optional<int64_t> steps, checkpoint_every, keep_checkpoints;
  int threads = 0;
  bool resume = false, jsonl = false, dry_run = false, elastic = false;
  ElasticSettings elastic_settings;
};

// `loom-exec run …` and `loom-exec check …` take the same arguments: what is checked is what runs.
std::vector<std::string> executor_arguments(const char* subcommand, const RunOptions& o, int threads_per_rank,
                                            std::optional<int64_t> run_id) {
  std::vector<std::string> args = {subcommand, o.plan_path};
  auto add = [&](const char* flag, const std::string& value) {
    if (!value.empty()) args.insert(args.end(), {flag, value});
  };
  if (o.steps) add("--steps", std::to_string(*o.steps));
  add("--data", o.data);
  if (threads_per_rank > 0) add("--threads", std::to_string(threads_per_rank));
  if (o.jsonl) args.push_back("--jsonl");
  add("--db", o.db);
  if (run_id) add("--run-id", std::to_string(*run_id));
  add("--save-model", o.save_model);
  add("--init-from", o.init_from);
  add("--checkpoint-dir", o.checkpoint_dir);
  if (o.checkpoint_every) add("--checkpoint-every", std::to_string(*o.checkpoint_every));
  if (o.keep_checkpoints) add("--keep-checkpoints", std::to_string(*o.keep_checkpoints));
  if (o.resume) args.push_back("--resume");
  if (o.elastic) args.push_back("--elastic");
  if (o.backend != "cpu") add("--backend", o.backend);
  return args;
}

// Everything about the run that can be checked before a rank starts (loom-exec check: the data,
// --init-from's shapes, the checkpoint to resume, --save-model's place): one line from `loom`.
void check_before_launch(const RunOptions& o) {
  std::vector<std::string> command = {executor_path()};
  const std::vector<std::string> check = executor_arguments("check", o, 0, std::nullopt);
  command.insert(command.end(), check.begin(), check.end());
  ErrorRelay errors;
  const int status = spawn_and_wait(command, "", {}, &errors);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw_executor_failure(status, errors);
}

std::vector<std::string> command_for(const RunOptions& o, const core::Plan& plan, std::optional<int64_t> run_id) {
  const int64_t ranks = plan.cluster.world_size();
  if (o.launcher == "none" && ranks != 1 && !std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("SLURM_NTASKS"))
    throw InvalidInput("--launcher none runs one process, but the plan needs {} ranks; use mpirun or srun", ranks);
  const int64_t ranks_per_node = ranks_per_node_for(o.launcher, ranks, plan.cluster.devices_per_node);
  const Launch launch = launch_for({o.launcher, ranks, ranks_per_node, o.threads, cores_of_this_host()});
  print_launch_warning(launch);
  std::vector<std::string> args = launch.launcher_args;
  args.push_back(executor_path());
  const std::vector<std::string> run = executor_arguments("run", o, launch.threads_per_rank, run_id);
  args.insert(args.end(), run.begin(), run.end());
  return args;
}

// The plan, with the prediction its run (or attempt) is compared against: (plan id, prediction id).
std::pair<int64_t, int64_t> store_predicted_plan(core::Store& store, const core::Plan& plan, const std::string& path,
                                                 const std::vector<core::Profile>& profiles) {
  sim::SimulationOptions simulation;
  simulation.record_timeline = false;
  const sim::Prediction prediction = simulate_on(plan, profiles, simulation);
  const std::vector<int64_t> ids = store.insert_predicted_plans({{core::plan_row(plan, path), sim::prediction_row(0, prediction)}});
  return {ids.front(), store.predictions_for_plan(ids.front()).back().id};
}

}  // namespace

Command add_run_command(CLI::App& parent) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* app = parent.add_subcommand("run", "Train a plan for real: launch loom-exec on its ranks");
  app->add_option("plan", o->plan_path, "Plan JSON file")->required();
  app->add_option("--steps", o->steps, "Steps to train [default: the plan's train-iters]");
  app->add_option("--data", o->data, "Token shard (.bin, llm.c format) or text file [default: the built-in corpus]");
  app->add_option("--db", o->db, "Record the run, its steps and per-rank statistics in this SQLite file");
  app->add_option("--checkpoint-dir", o->checkpoint_dir, "Write checkpoints here (every --checkpoint-every steps and at the end)");
  app->add_option("--checkpoint-every", o->checkpoint_every, "Steps between checkpoints");
  app->add_option("--keep-checkpoints", o->keep_checkpoints,
                  "Keep only the newest N complete checkpoints, removing older ones [default: keep all]");
  app->add_flag("--resume", o->resume, "Continue from the newest complete checkpoint in --checkpoint-dir");
  app->add_option("--save-model", o->save_model, "Write the trained model (safetensors, Hugging Face GPT-2 or Llama names)");
  app->add_option("--init-from", o->init_from, "Start from these weights (safetensors, Hugging Face GPT-2 or Llama names)");
  app->add_option("--launcher", o->launcher, "mpirun, srun, or none (already under a launcher)")
      ->check(CLI::IsMember({"mpirun", "srun", "none"}))
      ->capture_default_str();
  app->add_option("--backend", o->backend, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app->add_option("--threads", o->threads,
                  "Threads per rank [default: the measured CPU profile's, else cores / ranks]")
      ->check(CLI::Range(1, 4096));
  CLI::Option* elastic =
      app->add_flag("--elastic", o->elastic,
                    "When a rank dies, re-plan for the devices left and continue from the newest checkpoint as a "
                    "new attempt of the run (needs --checkpoint-dir and --checkpoint-every)");
  app->add_option("--min-devices", o->elastic_settings.min_devices,
                  "With --elastic: end the run as failed rather than continue on fewer devices [default: 1]")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30))
      ->needs(elastic);
  app->add_option("--heartbeat-timeout", o->elastic_settings.heartbeat_timeout_s,
                  "With --elastic: seconds without a progress line from rank 0 after which an attempt counts as "
                  "hung and is restarted on fewer devices; 0: never [default: 60]")
      ->check(CLI::Range(0.0, 1e9))
      ->needs(elastic);
  app->add_flag("--jsonl", o->jsonl, "One JSON line per step (for scripts and the GUI)");
  app->add_flag("--dry-run", o->dry_run, "Print the command that would run, and stop");
  app->add_option("--profile", o->profile,
                  "Profile whose prediction the run is stored against, for `loom compare` [default: the plan's]");
  app->footer("Examples:\n  loom run plan.json --steps 20 --db loom.db\n"
              "  loom run plan.json --checkpoint-dir ckpt --checkpoint-every 50 --resume\n"
              "  loom run plan.json --db loom.db --checkpoint-dir ckpt --checkpoint-every 50 --elastic --min-devices 2");
  return {app, [o] {
            const core::Plan plan = core::read_plan_file(o->plan_path);
            plan.validate();
            if (o->elastic && (o->checkpoint_dir.empty() || !o->checkpoint_every))
              throw InvalidInput("--elastic needs --checkpoint-dir and --checkpoint-every: a run continues from its "
                                 "newest checkpoint");
            if (o->elastic && o->elastic_settings.min_devices > plan.cluster.world_size())
              throw InvalidInput("--min-devices={} is more than the plan's {} devices; expected at most {}",
                                 o->elastic_settings.min_devices, plan.cluster.world_size(), plan.cluster.world_size());
            if (o->elastic && o->launcher == "none")
              throw InvalidInput("--elastic starts each attempt's ranks itself: use --launcher mpirun or srun");
            // A mixed cluster predicts each group on its own profile; --profile is refused there.
            const std::vector<core::Profile> profiles = plan_profiles(plan, o->profile);
            const core::Profile& profile = profiles.front();
            if (!o->save_model.empty()) {
              const std::vector<std::filesystem::path> inputs = {o->plan_path, o->data, o->init_from, o->db,
                                                                 o->checkpoint_dir, profile_file_input(o->profile)};
              core::check_output_target(o->save_model, inputs);
            }
            // A CPU profile was measured with some threads per rank: run as it was measured, so
            // the prediction applies.
            if (o->threads == 0 && profile.device.host_cores > 0) o->threads = int(profile.device.threads_per_rank);
            // Before the store is touched: a refused run leaves no trace in it.
            check_before_launch(*o);
            std::optional<core::Store> store;
            std::optional<int64_t> run_id;
            if (!o->db.empty() && !o->dry_run) {
              // From here a cancel is recorded in the store instead of leaving the run "running".
              catch_cancel_signals();
              store.emplace(core::Store::open(o->db));
              // The run is stored with the prediction it will be compared against.
              core::RunRow run;
              std::tie(run.plan_id, run.prediction_id) = store_predicted_plan(*store, plan, o->plan_path, profiles);
              run.backend = o->backend;
              run.profile_name = o->profile.empty() ? plan.cluster.profile : o->profile;  // resolvable again
              // Where its checkpoints go, so that a failed run can be re-planned and resumed from
              // them (the GUI's Runs view) without asking.
              if (!o->checkpoint_dir.empty())
                run.run_json =
                    core::Json{{"checkpoint_dir", std::filesystem::absolute(o->checkpoint_dir).lexically_normal().string()}}
                        .dump();
              run_id = store->begin_run(run);
              // The GUI and scripts learn the run's id before its first step.
              if (o->jsonl) std::cout << core::Json{{"event", "run"}, {"run_id", *run_id}}.dump() << std::endl;
            }
            if (o->elastic && !o->dry_run) {
              ElasticRun elastic;
              elastic.settings = o->elastic_settings;
              elastic.checkpoint_dir = o->checkpoint_dir;
              elastic.profile = o->profile;
              elastic.jsonl = o->jsonl;
              elastic.store = store ? &*store : nullptr;
              elastic.run_id = run_id;
              // Each attempt runs with the options of the first, on its own plan.
              auto attempt_options = [o](const std::string& path, bool resume) {
                RunOptions attempt = *o;
                attempt.plan_path = path;
                attempt.resume = resume;
                return attempt;
              };
              elastic.command = [&](const std::string& path, const core::Plan& attempt_plan, bool resume) {
                return command_for(attempt_options(path, resume), attempt_plan, run_id);
              };
              elastic.check = [&](const std::string& path, bool resume) {
                check_before_launch(attempt_options(path, resume));
              };
              elastic.store_plan = [&](const core::Plan& attempt_plan, const std::string& path) {
                // An attempt on a mixed cluster keeps its groups' own profiles.
                return store_predicted_plan(*store, attempt_plan, path,
                                            attempt_plan.cluster.mixed() ? plan_profiles(attempt_plan, "")
                                                                         : std::vector<core::Profile>{profile});
              };
              run_elastic(elastic, o->plan_path, plan, o->resume);
              return;
            }
            const std::vector<std::string> command = command_for(*o, plan, run_id);
            fmt::print(stderr, "loom: {}\n", fmt::join(command, " "));
            if (o->dry_run) return;
            // Recorded as soon as the signal comes, before the ranks die: a rank that sees a peer
            // vanish must not get to record a failure of its own first.
            auto record_cancel = [&] {
              try {
                if (store && store->run(*run_id).status == core::RunStatus::running)
                  store->finish_run(*run_id, core::RunStatus::cancelled, "");
              } catch (const Error&) {
                // The store was busy: tried again below, once the ranks have stopped.
              }
            };
            ErrorRelay errors;
            // A cancel before the ranks started: they are never started.
            const int status = cancel_signal_received() != 0 ? W_EXITCODE(0, cancel_signal_received())
                                                             : spawn_and_wait(command, "", record_cancel, &errors);
            const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (ok) return;
            if (cancel_signal_received() != 0) {
              if (store && store->run(*run_id).status == core::RunStatus::running)
                store->finish_run(*run_id, core::RunStatus::cancelled, "");
              const std::string marked = run_id ? fmt::format("; run {} marked cancelled", *run_id) : "";
              throw Error("cancelled by the user{}", marked);
            }
            // The first rank to fail says why in its own words; the launcher's status only says that.
            const ExecutorFailure failure = executor_failure(status, errors);
            if (store && store->run(*run_id).status == core::RunStatus::running)
              store->finish_run(*run_id, core::RunStatus::failed, failure.reason);
            const std::string marked = run_id ? fmt::format("; run {} marked failed", *run_id) : "";
            if (failure.bad_input) throw InvalidInput("{}{}", failure.reason, marked);
            throw Error("{}{}", failure.reason, marked);
          }};
}

}  // namespace loom::cli
