// `loom import megatron|llmc LOGFILE`: another framework's training log stored as a measured run,
// so that `loom runs`, `loom compare` and the GUI treat it as they treat Loom's own. The work is
// plan::import_megatron_log / import_llmc_log (the GUI calls the same); this file only formats.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "core/json_reader.hpp"
#include "core/store.hpp"
#include "planner/log_import.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

namespace loom::cli {
namespace {

struct ImportOptions {
  std::string log_path;
  std::string db = "loom.db";
  std::string format = "table";
  plan::LogImportOptions import;
};

void print_result(const plan::LogImportResult& r, const ImportOptions& o) {
  if (o.format == "json") {
    core::Json json{{"format", "loom-import"},
                    {"version", 1},
                    {"run", r.run_id},
                    {"plan", r.plan_id},
                    {"source", r.source},
                    {"log_format", r.variant},
                    {"log_file", r.file_name},
                    {"profile", r.profile_name},
                    {"plan_from_arguments", r.plan_from_arguments},
                    {"status", core::to_string(r.status)},
                    {"reason", r.reason},
                    {"steps", r.steps},
                    {"first_iteration", r.first_iteration},
                    {"last_iteration", r.last_iteration},
                    {"total_iterations", r.total_iterations ? core::Json(*r.total_iterations) : core::Json(nullptr)},
                    {"steps_without_loss", r.steps_without_loss},
                    {"steady_step_time_s", r.steady_step_time_s},
                    {"peak_memory_bytes", r.peak_memory_bytes ? core::Json(*r.peak_memory_bytes) : core::Json(nullptr)},
                    {"ranks_with_memory", r.ranks_with_memory},
                    {"measured_categories", r.measured_categories},
                    {"ignored_lines", r.ignored_lines}};
    std::cout << json.dump(2) << "\n";
    return;
  }
  const std::string range = r.total_iterations
                                ? fmt::format("{} to {} of {}", r.first_iteration, r.last_iteration, *r.total_iterations)
                                : fmt::format("{} to {}", r.first_iteration, r.last_iteration);
  TextTable table({"", ""});
  table.add_row({"run", std::to_string(r.run_id)});
  table.add_row({"source", fmt::format("{} ({})", r.source, r.variant)});
  table.add_row({"plan", fmt::format("{} ({})", r.plan_id, r.plan_from_arguments ? "rebuilt from the log's arguments"
                                                                                  : "given with --plan")});
  table.add_row({"status", r.reason.empty() ? std::string(core::to_string(r.status))
                                            : fmt::format("{}: {}", core::to_string(r.status), r.reason)});
  table.add_row({"steps imported", fmt::format("{} (iterations {})", r.steps, range)});
  if (r.steps_without_loss > 0)
    table.add_row({"without a loss", fmt::format("{} (skipped or NaN iterations)", r.steps_without_loss)});
  table.add_row({"mean step time", fmt::format("{:.1f} ms (after the warm-up)", r.steady_step_time_s * 1e3)});
  table.add_row({"peak memory", r.peak_memory_bytes ? fmt::format("{} (max allocated, over {} ranks)",
                                                                  human_bytes(double(*r.peak_memory_bytes)),
                                                                  r.ranks_with_memory)
                                                    : "not in the log"});
  table.add_row({"time by category", r.measured_categories.empty() ? "not in the log"
                                                                   : fmt::format("{}", fmt::join(r.measured_categories, ", "))});
  table.add_row({"ignored lines", std::to_string(r.ignored_lines)});
  fmt::print("{}", table.render());
  fmt::print("\nNext: loom compare {} --db {}\n", r.run_id, o.db);
}

CLI::App* add_import_source(CLI::App& parent, const std::shared_ptr<ImportOptions>& o, const char* name,
                            const char* description, bool plan_required) {
  CLI::App* app = parent.add_subcommand(name, description);
  app->add_option("log", o->log_path, "The training log (its stdout, saved)")->required();
  CLI::Option* plan = app->add_option(
      "--plan", o->import.plan_path,
      plan_required ? "The run's plan.json" : "The run's plan.json [default: rebuilt from the log's arguments block]");
  if (plan_required) plan->required();
  app->add_option("--db", o->db, "SQLite store")->capture_default_str();
  app->add_option("--profile", o->import.profile,
                  fmt::format("Profile to predict the run with [default: the plan's, else {}]", plan::kDefaultImportProfile));
  add_format_option(*app, o->format);
  return app;
}

}  // namespace

Command add_import_command(CLI::App& parent) {
  auto megatron = std::make_shared<ImportOptions>();
  auto llmc = std::make_shared<ImportOptions>();
  CLI::App* app = parent.add_subcommand("import", "Store a Megatron-LM or llm.c training log as a measured run");
  app->require_subcommand(1);
  // Before the two sources are added: a subcommand takes its parent's footer when it is made.
  app->footer(
      "Examples:\n"
      "  loom import megatron train.log --db loom.db\n"
      "  loom import megatron train.log --plan plan.json --profile h100-80gb-dgx\n"
      "  loom import llmc gpt2.log --plan plan.json --db loom.db\n"
      "  loom compare 1 --db loom.db");
  CLI::App* megatron_app =
      add_import_source(*app, megatron, "megatron", "Import Megatron-LM's training log (pretrain_gpt.py's output)", false);
  megatron_app->add_option("--devices-per-node", megatron->import.devices_per_node,
                           "Devices per node, for a plan rebuilt from the arguments")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
      ->capture_default_str();
  add_import_source(*app, llmc, "llmc", "Import llm.c's training output (train_gpt2.cu / train_gpt2.c)", true);
  return {app, [megatron, llmc, megatron_app] {
            const bool is_megatron = megatron_app->parsed();
            const ImportOptions& o = is_megatron ? *megatron : *llmc;
            // A refused log leaves no new, empty store behind.
            const bool new_store = !std::filesystem::exists(o.db);
            std::optional<plan::LogImportResult> result;
            try {
              core::Store store = core::Store::open(o.db);
              result = is_megatron ? plan::import_megatron_log(store, o.log_path, o.import)
                                   : plan::import_llmc_log(store, o.log_path, o.import);
            } catch (...) {
              if (new_store) {
                std::error_code ignored;
                for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(o.db + suffix, ignored);
              }
              throw;
            }
            print_result(*result, o);
          }};
}

}  // namespace loom::cli
