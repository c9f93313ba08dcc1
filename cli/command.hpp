#pragma once
// Each `loom` subcommand registers its options on the parent app and returns how to run it,
// so that main dispatches after parsing and every error reaches one handler.

#include <CLI/CLI.hpp>

#include <functional>

namespace loom::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<void()> run;
};

Command add_presets_command(CLI::App& parent);
Command add_show_command(CLI::App& parent);
Command add_init_command(CLI::App& parent);
Command add_simulate_command(CLI::App& parent);
Command add_validate_command(CLI::App& parent);
Command add_plan_command(CLI::App& parent);
Command add_replan_command(CLI::App& parent);
Command add_export_command(CLI::App& parent);
Command add_bench_command(CLI::App& parent);
Command add_run_command(CLI::App& parent);
Command add_checkpoint_command(CLI::App& parent);
Command add_runs_command(CLI::App& parent);
Command add_compare_command(CLI::App& parent);
Command add_profile_command(CLI::App& parent);
Command add_calibrate_command(CLI::App& parent);
Command add_import_command(CLI::App& parent);

// A check for number options that must be finite, positive and at most `maximum`: CLI11's own
// (PositiveNumber, Range) let "nan" through, and a measuring time of infinity is an error.
CLI::Validator finite_positive_number(double maximum);

// Adds "--format table|json" (the default is table) bound to `format`.
CLI::Option* add_format_option(CLI::App& app, std::string& format);

// Parses argv, runs the chosen subcommand, maps errors to exit codes (2: bad input, 1: failure).
int run_loom(int argc, char** argv);

}  // namespace loom::cli
