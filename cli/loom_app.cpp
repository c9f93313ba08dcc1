// The `loom` command line: subcommands, --version, and the one place where errors become
// "loom: error: …" and an exit status.

#include "cli/command.hpp"
#include "cli/number_arguments.hpp"
#include "core/error.hpp"
#include "core/output_file.hpp"  // finish_standard_output

#include <fmt/format.h>

#include <cmath>         // std::isfinite
#include <cstdio>        // std::ferror, stdout
#include <functional>    // a command's body
#include <iostream>      // std::cout, std::cerr
#include <optional>      // a refused argument
#include <system_error>  // fmt's failed writes
#include <vector>

namespace loom::cli {

CLI::Validator finite_positive_number(double maximum) {
  return CLI::Validator(
      [maximum](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value)) return "'" + text + "' is not a number";
        if (!std::isfinite(value) || value <= 0 || value > maximum)
          return fmt::format("'{}' must be a number above 0 and at most {}", text, maximum);
        return {};
      },
      fmt::format("0 < NUMBER <= {}", maximum));
}

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
// The command as typed, nested subcommands included ("loom import llmc"), for the help it points to.
std::string command_path(const CLI::App& app) {
  std::string path = "loom";
  const CLI::App* at = &app;
  for (bool deeper = true; deeper;) {
    deeper = false;
    for (const CLI::App* sub : at->get_subcommands())
      if (sub->parsed()) {
        path += " " + sub->get_name();
        at = sub;
        deeper = true;
        break;
      }
  }
  return path;
}

// What a failing command printed before its error still goes out (the table `loom plan` shows
// before saying that nothing fits); a failure to write it is not worth a second error.
void flush_standard_output_quietly() {
  std::cout.flush();
  std::fflush(stdout);
}

int fail(int code, const std::string& message) {
  std::cerr << "loom: error: " << message << "\n";
  return code;
}

// --help and --version print through CLI11; their output is checked like every command's.
int print_help_or_version(CLI::App& app, const CLI::ParseError& request) {
  const int status = app.exit(request);
  try {
    core::finish_standard_output();
  } catch (const loom::Error& e) {
    return fail(1, e.what());
  }
  return status;
}

}  // namespace

int run_loom(int argc, char** argv) {
  CLI::App app(kDescription, "loom");
  app.set_version_flag("--version", std::string("loom ") + LOOM_VERSION);
  app.footer(kExamples);
  app.require_subcommand(0, 1);
  std::vector<Command> commands = {add_presets_command(app), add_show_command(app), add_init_command(app),
                                   add_simulate_command(app), add_validate_command(app), add_plan_command(app),
                                   add_replan_command(app),
                                   add_export_command(app), add_bench_command(app), add_run_command(app),
                                   add_checkpoint_command(app), add_runs_command(app), add_compare_command(app),
                                   add_profile_command(app), add_import_command(app),
                                   add_calibrate_command(app)};
  if (const std::optional<std::string> too_large = out_of_range_integer_argument(argc, argv))
    return fail(2, *too_large);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return print_help_or_version(app, e);
  } catch (const CLI::CallForAllHelp& e) {
    return print_help_or_version(app, e);
  } catch (const CLI::CallForVersion& e) {
    return print_help_or_version(app, e);
  } catch (const CLI::ConversionError& e) {
    return fail(2, fmt::format("{} (see '{} --help')", conversion_error_message(e.what()), command_path(app)));
  } catch (const CLI::ParseError& e) {
    return fail(2, fmt::format("{} (see '{} --help')", e.what(), command_path(app)));
  }
  try {
    // Everything printed must reach its reader: a full disk or a closed pipe behind standard
    // output fails the command, here for all of them, instead of ending it with status 0.
    auto run_to_completion = [](const std::function<void()>& run) {
      try {
        run();
      } catch (...) {
        flush_standard_output_quietly();
        throw;
      }
      core::finish_standard_output();
    };
    for (const Command& command : commands) {
      if (command.app->parsed()) {
        run_to_completion(command.run);
        return 0;
      }
    }
    run_to_completion([&app] { std::cout << app.help(); });
    return 0;
  } catch (const loom::Error& e) {
    return fail(e.exit_code(), e.what());
  } catch (const std::system_error& e) {
    // fmt::print reports a failed write to standard output as "cannot write to file: …".
    if (std::ferror(stdout)) return fail(1, fmt::format("cannot write to standard output: {}", e.code().message()));
    return fail(1, e.what());
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
}

}  // namespace loom::cli
