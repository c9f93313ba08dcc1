// The `loom` command line: subcommands, --version, and the one place where errors become
// "loom: error: …" and an exit status.

#include "cli/command.hpp"
#include "core/error.hpp"

#include <fmt/format.h>

#include <iostream>
#include <vector>

namespace loom::cli {

CLI::Option* add_format_option(CLI::App& app, std::string& format) {
  return app.add_option("--format", format, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
}

namespace {

constexpr const char* kDescription =
    "Loom plans, simulates and runs parallel training of transformer language models.";

constexpr const char* kExamples =
    "Examples:\n"
    "  loom presets                                  list model presets and device profiles\n"
    "  loom show                                     the built-in default plan, explained\n"
    "  loom init --model gpt2-124m > plan.json       a starting plan from a preset\n"
    "  loom init --model llama3-8b --tp 4 --pp 2 | loom show -\n"
    "  loom show plan.json --format json             derived quantities for scripts\n"
    "\nRun 'loom COMMAND --help' for a command's options.";

// "loom plan" when the error is in `loom plan`'s arguments, else "loom": where --help helps.
std::string command_path(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands())
    if (sub->parsed()) return "loom " + sub->get_name();
  return "loom";
}

int fail(int code, const std::string& message) {
  std::cerr << "loom: error: " << message << "\n";
  return code;
}

}  // namespace

int run_loom(int argc, char** argv) {
  CLI::App app(kDescription, "loom");
  app.set_version_flag("--version", std::string("loom ") + LOOM_VERSION);
  app.footer(kExamples);
  app.require_subcommand(0, 1);
  std::vector<Command> commands = {add_presets_command(app), add_show_command(app), add_init_command(app),
                                   add_simulate_command(app), add_validate_command(app), add_plan_command(app),
                                   add_export_command(app), add_bench_command(app), add_run_command(app),
                                   add_checkpoint_command(app), add_runs_command(app), add_compare_command(app),
                                   add_profile_command(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ConversionError& e) {
    return fail(2, fmt::format("{}: expected a number (see '{} --help')", e.what(), command_path(app)));
  } catch (const CLI::ParseError& e) {
    return fail(2, fmt::format("{} (see '{} --help')", e.what(), command_path(app)));
  }
  try {
    for (const Command& command : commands) {
      if (command.app->parsed()) {
        command.run();
        return 0;
      }
    }
    std::cout << app.help();
    return 0;
  } catch (const loom::Error& e) {
    return fail(e.exit_code(), e.what());
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
}

}  // namespace loom::cli
