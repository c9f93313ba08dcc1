// `loom compare RUN_ID`: a measured run beside the simulator's prediction for its plan.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "cli/run_summary.hpp"
#include "core/error.hpp"
#include "core/plan_json.hpp"
#include "core/store.hpp"
#include "simulator/prediction.hpp"

#include <fmt/format.h>

#include <iostream>
#include <map>

namespace loom::cli {
namespace {

struct Row {
  std::string quantity;
  double predicted = 0, measured = 0;
  std::string unit;  // "s", "tokens/s"
};

// The executor's categories (seconds per step, averaged over the ranks of one pipeline stage).
std::map<std::string, double> measured_categories(const std::vector<core::RankStatRow>& ranks, int64_t stage,
                                                  int64_t& warmup_steps) {
  std::map<std::string, double> sums;
  int64_t counted = 0;
  for (const core::RankStatRow& rank : ranks) {
    const core::Json stats = core::Json::parse(rank.stats_json);
    if (stats.value("pipeline_rank", -1) != stage) continue;
    const double steps = double(std::max<int64_t>(1, stats.value("measured_steps", int64_t(1))));
    warmup_steps = stats.value("warmup_steps", int64_t(0));
    for (const auto& [name, seconds] : stats.at("time_by_category").items()) sums[name] += seconds.get<double>() / steps;
    ++counted;
  }
  for (auto& [name, value] : sums) value /= double(std::max<int64_t>(1, counted));
  return sums;
}

}  // namespace

Command add_compare_command(CLI::App& parent) {
  struct Options {
    int64_t run_id = 0;
    std::string db = "loom.db";
    std::string profile;
    std::string format = "table";
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("compare", "Set a measured run beside its prediction, category by category");
  app->add_option("run", o->run_id, "Run id (see `loom runs`)")->required();
  app->add_option("--db", o->db, "SQLite store")->capture_default_str();
  app->add_option("--profile", o->profile, "Predict with this profile [default: the one the run was stored with]");
  add_format_option(*app, o->format);
  app->footer("Example:\n  loom run plan.json --db loom.db --profile profiles/this-machine.json\n  loom compare 1 --db loom.db");
  return {app, [o] {
            core::Store store = core::Store::open(o->db);
            const core::RunRow run = store.run(o->run_id);
            const core::Plan plan = core::plan_from_json(core::Json::parse(store.plan(run.plan_id).plan_json));
            const std::string profile_name =
                !o->profile.empty() ? o->profile : run.profile_name.value_or(plan.cluster.profile);
            sim::SimulationOptions options;
            options.record_timeline = false;
            const sim::Prediction p = sim::simulate(plan, core::resolve_profile(profile_name), options);
            const std::vector<core::StepRow> steps = store.steps(run.id);
            const std::vector<core::RankStatRow> ranks = store.rank_stats(run.id);
            if (steps.empty() || ranks.empty())
              throw InvalidInput("run {} has no measured steps or rank statistics yet (status {})", run.id,
                                 core::to_string(run.status));
            int64_t warmup = warmup_steps_of(steps);
            const std::map<std::string, double> measured = measured_categories(ranks, p.critical_pipeline_rank, warmup);
            const double step_time = steady_step_time_s(steps);
            const double tokens = double(plan.training.global_batch_size * plan.model.seq_length);
            auto m = [&](const char* key) { return measured.count(key) ? measured.at(key) : 0.0; };
            const sim::Breakdown& b = p.breakdown;
            const std::vector<Row> rows = {
                {"step time", p.step_time_s, step_time, "s"},
                {"tokens/s", p.tokens_per_s, tokens / step_time, "tokens/s"},
                {"forward", b.forward_s, m("forward_s"), "s"},
                {"backward", b.backward_s, m("backward_s"), "s"},
                {"recompute", b.recompute_s, m("recompute_s"), "s"},
                {"tp comm", b.tp_comm_exposed_s, m("tp_comm_s"), "s"},
                {"pp comm + bubble/wait", b.pp_comm_exposed_s + b.pp_bubble_s, m("pp_comm_s"), "s"},
                {"dp comm", b.dp_comm_exposed_s, m("dp_comm_s"), "s"},
                {"optimizer", b.optimizer_s, m("optimizer_s"), "s"},
            };
            core::Json json_rows = core::Json::array(), json_ranks = core::Json::array();
            TextTable table({"quantity", "predicted", "measured", "error"}, {1, 2, 3});
            for (const Row& r : rows) {
              const double error = error_percent(r.predicted, r.measured);
              json_rows.push_back({{"quantity", r.quantity}, {"predicted", r.predicted}, {"measured", r.measured},
                                   {"unit", r.unit}, {"error_percent", error}});
              auto show = [&](double v) {
                return r.unit == "s" ? fmt::format("{:.2f} ms", v * 1e3) : fmt::format("{:.0f} tokens/s", v);
              };
              table.add_row({r.quantity, show(r.predicted), show(r.measured), fmt::format("{:+.1f} %", error)});
            }
            TextTable memory({"rank", "stage", "predicted peak", "measured peak", "error"}, {0, 1, 2, 3, 4});
            for (const core::RankStatRow& rank : ranks) {
              const int64_t stage = pipeline_rank_of(rank);
              const double predicted = predicted_tensor_bytes(p, stage);
              const double measured_bytes = double(rank.peak_memory_bytes.value_or(0));
              json_ranks.push_back({{"rank", rank.rank}, {"pipeline_rank", stage}, {"predicted_peak_memory_bytes", predicted},
                                    {"measured_peak_memory_bytes", measured_bytes},
                                    {"error_percent", error_percent(predicted, measured_bytes)}});
              memory.add_row({std::to_string(rank.rank), std::to_string(stage), human_bytes(predicted),
                              human_bytes(measured_bytes), fmt::format("{:+.1f} %", error_percent(predicted, measured_bytes))});
            }
            if (o->format == "json") {
              std::cout << core::Json{{"format", "loom-compare"}, {"version", 1}, {"run", run.id},
                                      {"profile", profile_name}, {"warmup_steps", warmup},
                                      {"measured_steps", int64_t(steps.size()) - warmup}, {"rows", json_rows},
                                      {"ranks", json_ranks}}
                               .dump(2)
                        << "\n";
              return;
            }
            fmt::print("Run {} ({}, {} steps, the first {} excluded as warm-up) against profile {}; categories of "
                       "pipeline stage {}, per step\n",
                       run.id, core::to_string(run.status), steps.size(), warmup, profile_name, p.critical_pipeline_rank);
            fmt::print("{}\nPeak memory per rank: tensors only (the prediction without its {} runtime reserve, "
                       "the executor's allocator high-water mark)\n{}",
                       table.render(), human_bytes(double(p.memory.front().other_bytes)), memory.render());
          }};
}

}  // namespace loom::cli
