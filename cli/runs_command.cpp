// `loom runs`: the runs in a store, newest last.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "core/json_reader.hpp"
#include "core/store.hpp"
#include "simulator/run_comparison.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iostream>

namespace loom::cli {

Command add_runs_command(CLI::App& parent) {
  struct Options {
    std::string db = "loom.db";
    std::string format = "table";
    bool attempts = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("runs", "List the runs recorded in a store");
  app->add_option("--db", o->db, "SQLite store")->capture_default_str();
  add_format_option(*app, o->format);
  app->add_flag("--attempts", o->attempts,
                "Also list each run's attempts: the plan, devices, steps and cause of each (a run re-planned after a "
                "failure goes on as a new attempt)");
  app->footer("Examples:\n  loom runs --db loom.db\n  loom runs --db loom.db --attempts");
  return {app, [o] {
            core::Store store = core::Store::open(o->db, core::Store::OpenMode::existing);
            core::Json rows = core::Json::array();
            TextTable table({"run", "source", "plan", "status", "steps", "steady step time", "started", "reason",
                             "attempts"},
                            {0, 4, 5, 8});
            TextTable attempt_table({"run", "attempt", "plan", "devices", "status", "steps", "started", "finished",
                                     "cause"},
                                    {0, 1, 3});
            for (const core::RunRow& run : store.list_runs()) {
              const core::PlanRow plan = store.plan(run.plan_id);
              const std::vector<core::StepRow> steps = store.steps(run.id);
              double total = 0;
              for (const core::StepRow& s : steps) total += s.step_time_s;
              const double mean = steps.empty() ? 0.0 : total / double(steps.size());
              // The table shows what `loom compare` and `loom import` call the step time: the mean
              // after the warm-up steps, which a short run's first steps would otherwise dominate.
              const double steady = sim::steady_step_time_s(steps);
              const auto summary_of = [](const core::PlanRow& p) {
                return fmt::format("{} tp{} pp{} dp{} mbs{}", p.model_name, p.tp.value_or(1), p.pp.value_or(1),
                                   p.dp.value_or(1), p.micro_batch_size.value_or(1));
              };
              const std::string summary = summary_of(plan);
              core::Json attempts_json = core::Json::array();
              const std::vector<core::RunAttemptRow> attempts = store.attempts(run.id);
              for (const core::RunAttemptRow& a : attempts) {
                const core::PlanRow attempt_plan = a.plan_id == plan.id ? plan : store.plan(a.plan_id);
                const std::string steps_range =
                    a.start_step ? fmt::format("{}-{}", *a.start_step, a.end_step.value_or(*a.start_step)) : "-";
                attempts_json.push_back({{"attempt", a.attempt},
                                         {"plan_id", a.plan_id},
                                         {"plan", summary_of(attempt_plan)},
                                         {"prediction_id", a.prediction_id ? core::Json(*a.prediction_id) : core::Json()},
                                         {"devices", a.devices},
                                         {"status", core::to_string(a.status)},
                                         {"start_step", a.start_step ? core::Json(*a.start_step) : core::Json()},
                                         {"end_step", a.end_step ? core::Json(*a.end_step) : core::Json()},
                                         {"started_at", a.started_at},
                                         {"finished_at", a.finished_at ? core::Json(*a.finished_at) : core::Json()},
                                         {"cause", a.cause.value_or("")}});
                attempt_table.add_row({std::to_string(run.id), std::to_string(a.attempt), summary_of(attempt_plan),
                                       std::to_string(a.devices), std::string(core::to_string(a.status)), steps_range,
                                       a.started_at, a.finished_at.value_or("-"), a.cause.value_or("")});
              }
              rows.push_back({{"id", run.id},
                              {"source", run.source},
                              {"plan", summary},
                              {"status", core::to_string(run.status)},
                              {"steps", steps.size()},
                              {"mean_step_time_s", mean},
                              {"steady_step_time_s", steady},
                              {"warmup_steps", sim::warmup_steps_of(steps)},
                              {"started_at", run.started_at},
                              {"reason", run.reason.value_or("")},
                              {"attempts", attempts_json}});
              table.add_row({std::to_string(run.id), run.source, summary, std::string(core::to_string(run.status)),
                             std::to_string(steps.size()), steps.empty() ? "-" : fmt::format("{:.1f} ms", steady * 1e3),
                             run.started_at, run.reason.value_or(""), std::to_string(attempts.size())});
            }
            if (o->format == "json") {
              std::cout << core::Json{{"format", "loom-runs"}, {"version", 1}, {"runs", rows}}.dump(2) << "\n";
            } else {
              fmt::print("{}", table.render());
              if (o->attempts) fmt::print("\nAttempts\n{}", attempt_table.render());
            }
          }};
}

}  // namespace loom::cli
