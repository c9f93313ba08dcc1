// `loom run PLAN.json`: launches the executor (`loom-exec run`) on the plan's ranks through mpirun
// or srun, records the run in the store, and marks it failed if the ranks do not finish — as
// cancelled when SIGINT or SIGTERM stopped them (Ctrl-C, or the GUI's Cancel).

#include "cli/command.hpp"
#include "cli/error_relay.hpp"
#include "cli/process.hpp"
#include "core/error.hpp"
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

namespace loom::cli {
namespace {

struct RunOptions {
  std::string plan_path, data, db, checkpoint_dir, launcher = "mpirun", backend = "cpu", save_model, init_from, profile;
  std::optional<int64_t> steps, checkpoint_every;
  int threads = 0;
  bool resume = false, jsonl = false, dry_run = false;
};

std::vector<std::string> command_for(const RunOptions& o, const core::Plan& plan, std::optional<int64_t> run_id) {
  const int64_t ranks = plan.cluster.world_size();
  std::vector<std::string> args;
  if (o.launcher == "mpirun") {
    args = {"mpirun", "-np", std::to_string(ranks)};
    if (ranks > int64_t(std::thread::hardware_concurrency())) args.push_back("--oversubscribe");
  } else if (o.launcher == "srun") {
    args = {"srun", "--ntasks", std::to_string(ranks)};
  } else if (ranks != 1 && !std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("SLURM_NTASKS")) {
    throw InvalidInput("--launcher none runs one process, but the plan needs {} ranks; use mpirun or srun", ranks);
  }
  args.push_back(executor_path());
  args.insert(args.end(), {"run", o.plan_path});
  auto add = [&](const char* flag, const std::string& value) {
    if (!value.empty()) args.insert(args.end(), {flag, value});
  };
  if (o.steps) add("--steps", std::to_string(*o.steps));
  add("--data", o.data);
  if (o.threads > 0) add("--threads", std::to_string(o.threads));
  if (o.jsonl) args.push_back("--jsonl");
  add("--db", o.db);
  if (run_id) add("--run-id", std::to_string(*run_id));
  add("--save-model", o.save_model);
  add("--init-from", o.init_from);
  add("--checkpoint-dir", o.checkpoint_dir);
  if (o.checkpoint_every) add("--checkpoint-every", std::to_string(*o.checkpoint_every));
  if (o.resume) args.push_back("--resume");
  return args;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) return fmt::format("the executor was killed by signal {}", WTERMSIG(status));
  return fmt::format("the executor exited with status {}", WEXITSTATUS(status));
}

constexpr const char* kCancelledReason = "cancelled by the user";

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
  app->add_flag("--resume", o->resume, "Continue from the newest complete checkpoint in --checkpoint-dir");
  app->add_option("--save-model", o->save_model, "Write the trained model (safetensors, GPT-2 names)");
  app->add_option("--init-from", o->init_from, "Start from these weights (safetensors, GPT-2 names)");
  app->add_option("--launcher", o->launcher, "mpirun, srun, or none (already under a launcher)")
      ->check(CLI::IsMember({"mpirun", "srun", "none"}))
      ->capture_default_str();
  app->add_option("--backend", o->backend, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app->add_option("--threads", o->threads,
                  "Threads per rank [default: the measured CPU profile's, else cores / ranks]");
  app->add_flag("--jsonl", o->jsonl, "One JSON line per step (for scripts and the GUI)");
  app->add_flag("--dry-run", o->dry_run, "Print the command that would run, and stop");
  app->add_option("--profile", o->profile,
                  "Profile whose prediction the run is stored against, for `loom compare` [default: the plan's]");
  app->footer("Examples:\n  loom run plan.json --steps 20 --db loom.db\n"
              "  loom run plan.json --checkpoint-dir ckpt --checkpoint-every 50 --resume");
  return {app, [o] {
            const core::Plan plan = core::read_plan_file(o->plan_path);
            plan.validate();
            if (o->backend == "cuda")
              throw InvalidInput("--backend cuda: this build's executor has no CUDA backend yet; use --backend cpu");
            if (!o->data.empty() && !std::filesystem::is_regular_file(o->data))
              throw InvalidInput("--data '{}': no such file", o->data);
            if (!o->init_from.empty() && !std::filesystem::is_regular_file(o->init_from))
              throw InvalidInput("--init-from '{}': no such file", o->init_from);
            if (o->resume && o->checkpoint_dir.empty()) throw InvalidInput("--resume needs --checkpoint-dir");
            if (o->steps && *o->steps < 0)
              throw InvalidInput("--steps={} must be 0 (load and save only) or positive", *o->steps);
            const core::Profile profile = core::resolve_profile(o->profile.empty() ? plan.cluster.profile : o->profile);
            // A CPU profile was measured with some threads per rank: run as it was measured, so
            // the prediction applies.
            if (o->threads == 0 && profile.device.host_cores > 0) o->threads = int(profile.device.threads_per_rank);
            std::optional<core::Store> store;
            std::optional<int64_t> run_id;
            if (!o->db.empty() && !o->dry_run) {
              // From here a cancel is recorded in the store instead of leaving the run "running".
              catch_cancel_signals();
              store.emplace(core::Store::open(o->db));
              // The run is stored with the prediction it will be compared against.
              sim::SimulationOptions simulation;
              simulation.record_timeline = false;
              const sim::Prediction prediction = sim::simulate(plan, profile, simulation);
              const std::vector<int64_t> ids =
                  store->insert_predicted_plans({{core::plan_row(plan, o->plan_path), sim::prediction_row(0, prediction)}});
              core::RunRow run;
              run.plan_id = ids.front();
              run.prediction_id = store->predictions_for_plan(run.plan_id).back().id;
              run.backend = o->backend;
              run.profile_name = o->profile.empty() ? plan.cluster.profile : o->profile;  // resolvable again
              run_id = store->begin_run(run);
              // The GUI and scripts learn the run's id before its first step.
              if (o->jsonl) std::cout << core::Json{{"event", "run"}, {"run_id", *run_id}}.dump() << std::endl;
            }
            const std::vector<std::string> command = command_for(*o, plan, run_id);
            fmt::print(stderr, "loom: {}\n", fmt::join(command, " "));
            if (o->dry_run) return;
            // Recorded as soon as the signal comes, before the ranks die: a rank that sees a peer
            // vanish must not get to record a failure of its own first.
            auto record_cancel = [&] {
              try {
                if (store && store->run(*run_id).status == core::RunStatus::running)
                  store->finish_run(*run_id, core::RunStatus::failed, kCancelledReason);
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
            const bool cancelled = cancel_signal_received() != 0;
            // The first rank to fail says why in its own words; the launcher's status only says that.
            std::string reason = cancelled ? kCancelledReason : describe_status(status);
            if (!cancelled && !errors.first_error().empty())
              reason = fmt::format("{} ({})", errors.first_error(), reason);
            if (store && store->run(*run_id).status == core::RunStatus::running)
              store->finish_run(*run_id, core::RunStatus::failed, reason);
            throw Error("{}{}", reason, run_id ? fmt::format("; run {} marked failed", *run_id) : "");
          }};
}

}  // namespace loom::cli
