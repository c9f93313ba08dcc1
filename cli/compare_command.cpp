// `loom compare RUN_ID`: a measured run beside the simulator's prediction for its plan. The numbers
// come from sim::compare_run (the GUI's Runs view shows the same); this file only formats them.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "core/store.hpp"
#include "simulator/run_comparison.hpp"

#include <fmt/format.h>

#include <iostream>
#include <optional>

namespace loom::cli {

Command add_compare_command(CLI::App& parent) {
  struct Options {
    int64_t run_id = 0;
    std::string db = "loom.db";
    std::string profile;
    std::string format = "table";
    std::optional<int64_t> attempt;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("compare", "Set a measured run beside its prediction, category by category");
  app->add_option("run", o->run_id, "Run id (see `loom runs`)")->required();
  app->add_option("--db", o->db, "SQLite store")->capture_default_str();
  app->add_option("--profile", o->profile, "Predict with this profile [default: the one the run was stored with]");
  app->add_option("--attempt", o->attempt,
                  "Compare this attempt of the run (see `loom runs --attempts`) with its own plan's prediction "
                  "[default: the last]");
  add_format_option(*app, o->format);
  app->footer("Example:\n  loom run plan.json --db loom.db --profile profiles/this-machine.json\n  loom compare 1 --db loom.db");
  return {app, [o] {
            core::Store store = core::Store::open(o->db, core::Store::OpenMode::existing);
            const sim::RunComparison c = sim::compare_run(store, o->run_id, o->profile, o->attempt);
            core::Json json_rows = core::Json::array(), json_ranks = core::Json::array();
            TextTable table({"quantity", "predicted", "measured", "error"}, {1, 2, 3});
            // Unmeasured quantities are null in JSON and "not measured" in the table, never a 0.
            auto or_null = [](const std::optional<double>& v) { return v ? core::Json(*v) : core::Json(nullptr); };
            for (const sim::ComparisonRow& r : c.rows) {
              json_rows.push_back({{"quantity", r.quantity}, {"predicted", r.predicted}, {"measured", or_null(r.measured)},
                                   {"unit", r.unit}, {"error_percent", or_null(r.error_percent)}});
              auto show = [&](double v) {
                return r.unit == "s" ? fmt::format("{:.2f} ms", v * 1e3) : fmt::format("{:.0f} tokens/s", v);
              };
              table.add_row({r.quantity, show(r.predicted), r.measured ? show(*r.measured) : "not measured",
                             r.error_percent ? fmt::format("{:+.1f} %", *r.error_percent) : "-"});
            }
            TextTable memory({"rank", "stage", "predicted peak", "measured peak", "error"}, {0, 1, 2, 3, 4});
            for (const sim::RankMemoryComparison& rank : c.ranks) {
              json_ranks.push_back({{"rank", rank.rank}, {"pipeline_rank", rank.pipeline_rank},
                                    {"predicted_peak_memory_bytes", rank.predicted_peak_bytes},
                                    {"measured_peak_memory_bytes", rank.measured_peak_bytes},
                                    {"error_percent", rank.error_percent}});
              memory.add_row({std::to_string(rank.rank), std::to_string(rank.pipeline_rank),
                              human_bytes(rank.predicted_peak_bytes), human_bytes(rank.measured_peak_bytes),
                              fmt::format("{:+.1f} %", rank.error_percent)});
            }
            if (o->format == "json") {
              std::cout << core::Json{{"format", "loom-compare"}, {"version", 1}, {"run", c.run_id},
                                      {"attempt", c.attempt}, {"attempts", c.attempts},
                                      {"source", c.source}, {"profile", c.profile_name}, {"warmup_steps", c.warmup_steps},
                                      {"measured_steps", c.measured_steps},
                                      {"rank_statistics", c.has_rank_statistics}, {"rows", json_rows},
                                      {"ranks", json_ranks}}
                               .dump(2)
                        << "\n";
              return;
            }
            // A run of one attempt reads as it always has; a re-planned one names the attempt compared.
            const std::string which =
                c.attempts > 1 ? fmt::format(" attempt {} of {}", c.attempt, c.attempts) : std::string();
            fmt::print("Run {}{} ({}, {} steps, the first {} excluded as warm-up) against profile {}; categories of "
                       "pipeline stage {}, per step\n",
                       c.run_id, which, core::to_string(c.status), c.stored_steps, c.warmup_steps, c.profile_name,
                       c.compared_pipeline_rank);
            if (c.attempts > 1 && c.cause) fmt::print("The attempt ended: {}\n", *c.cause);
            fmt::print("{}", table.render());
            if (!c.has_rank_statistics && c.source != "loom") {
              fmt::print("\nThe {} log reports no per-rank time or memory: only its steps are compared\n", c.source);
              return;
            }
            if (!c.has_rank_statistics && c.attempt < c.attempts) {
              fmt::print("\nPer-rank time and memory are the last attempt's: only this attempt's steps are compared\n");
              return;
            }
            if (!c.has_rank_statistics) {
              fmt::print("\nThe run ended before its ranks reported time per category and peak memory ({}): only its "
                         "steps are compared\n",
                         core::to_string(c.status));
              return;
            }
            fmt::print("\nPeak memory per rank: tensors only (the prediction without its {} runtime reserve, "
                       "the executor's allocator high-water mark)\n{}",
                       human_bytes(c.runtime_reserve_bytes), memory.render());
          }};
}

}  // namespace loom::cli
