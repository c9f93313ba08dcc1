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
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("runs", "List the runs recorded in a store");
  app->add_option("--db", o->db, "SQLite store")->capture_default_str();
  add_format_option(*app, o->format);
  app->footer("Example:\n  loom runs --db loom.db");
  return {app, [o] {
            core::Store store = core::Store::open(o->db, core::Store::OpenMode::existing);
            core::Json rows = core::Json::array();
            TextTable table({"run", "source", "plan", "status", "steps", "steady step time", "started", "reason"}, {0, 4, 5});
            for (const core::RunRow& run : store.list_runs()) {
              const core::PlanRow plan = store.plan(run.plan_id);
              const std::vector<core::StepRow> steps = store.steps(run.id);
              double total = 0;
              for (const core::StepRow& s : steps) total += s.step_time_s;
              const double mean = steps.empty() ? 0.0 : total / double(steps.size());
              // The table shows what `loom compare` and `loom import` call the step time: the mean
              // after the warm-up steps, which a short run's first steps would otherwise dominate.
              const double steady = sim::steady_step_time_s(steps);
              const std::string summary = fmt::format("{} tp{} pp{} dp{} mbs{}", plan.model_name, plan.tp.value_or(1),
                                                      plan.pp.value_or(1), plan.dp.value_or(1),
                                                      plan.micro_batch_size.value_or(1));
              rows.push_back({{"id", run.id},
                              {"source", run.source},
                              {"plan", summary},
                              {"status", core::to_string(run.status)},
                              {"steps", steps.size()},
                              {"mean_step_time_s", mean},
                              {"steady_step_time_s", steady},
                              {"warmup_steps", sim::warmup_steps_of(steps)},
                              {"started_at", run.started_at},
                              {"reason", run.reason.value_or("")}});
              table.add_row({std::to_string(run.id), run.source, summary, std::string(core::to_string(run.status)),
                             std::to_string(steps.size()), steps.empty() ? "-" : fmt::format("{:.1f} ms", steady * 1e3),
                             run.started_at, run.reason.value_or("")});
            }
            if (o->format == "json") {
              std::cout << core::Json{{"format", "loom-runs"}, {"version", 1}, {"runs", rows}}.dump(2) << "\n";
            } else {
              fmt::print("{}", table.render());
            }
          }};
}

}  // namespace loom::cli
