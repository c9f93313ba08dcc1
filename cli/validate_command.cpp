// `loom validate megatron-ptdp`: the simulator against published measurements.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "core/profile.hpp"
#include "simulator/megatron_validation.hpp"

#include <fmt/format.h>

#include <iostream>

namespace loom::cli {
namespace {

core::Json report_json(const sim::ValidationReport& report, const core::Profile& profile) {
  core::Json rows = core::Json::array();
  for (const sim::ValidationRow& row : report.rows) {
    const core::ParallelPlan& p = row.plan.parallel;
    rows.push_back({{"model", row.published.model},
                    {"parameters_billion", row.published.parameters_billion},
                    {"devices", row.published.devices},
                    {"tensor_parallel", p.tensor_parallel},
                    {"pipeline_parallel", p.pipeline_parallel},
                    {"data_parallel", p.data_parallel},
                    {"global_batch_size", row.published.global_batch_size},
                    {"micro_batch_size", p.micro_batch_size},
                    {"virtual_stages", row.plan.virtual_stages()},
                    {"published_tflops_per_device", row.published.tflops_per_device},
                    {"predicted_tflops_per_device", row.prediction.hardware_tflops_per_device},
                    {"error_percent", 100.0 * row.error_fraction},
                    {"step_time_s", row.prediction.step_time_s},
                    {"peak_memory_bytes", row.prediction.peak_memory_bytes},
                    {"candidates_simulated", row.candidates}});
  }
  return {{"format", "loom-validation"},
          {"version", 1},
          {"reference", "Narayanan et al., SC21, Table 1 (A100 80GB, full recompute, TFLOP/s counting the recompute pass)"},
          {"profile", profile.name},
          {"rows", rows},
          {"mape", report.mean_absolute_percentage_error}};
}

void print_report(const sim::ValidationReport& report, const core::Profile& profile) {
  fmt::print("Megatron-LM PTD-P (Narayanan et al., SC21, Table 1) on profile {} ({})\n", profile.name,
             profile.provenance);
  fmt::print("Published TFLOP/s per GPU count the recompute pass; micro-batch size and interleaving are the\n"
             "simulator's best fitting choice for each row (the paper does not list them).\n\n");
  TextTable table({"model", "GPUs", "tp", "pp", "dp", "batch", "mbs", "vpp", "step time", "published", "predicted", "error"},
                  {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  for (const sim::ValidationRow& row : report.rows) {
    const core::ParallelPlan& p = row.plan.parallel;
    table.add_row({row.published.model, std::to_string(row.published.devices), std::to_string(p.tensor_parallel),
                   std::to_string(p.pipeline_parallel), std::to_string(p.data_parallel),
                   std::to_string(row.published.global_batch_size), std::to_string(p.micro_batch_size),
                   std::to_string(row.plan.virtual_stages()), fmt::format("{:.2f} s", row.prediction.step_time_s),
                   fmt::format("{:.0f} TFLOP/s", row.published.tflops_per_device),
                   fmt::format("{:.1f} TFLOP/s", row.prediction.hardware_tflops_per_device),
                   fmt::format("{:+.1f} %", 100.0 * row.error_fraction)});
  }
  fmt::print("{}\nMean absolute percentage error: {:.2f} %\n", table.render(), report.mean_absolute_percentage_error);
}

}  // namespace

Command add_validate_command(CLI::App& parent) {
  struct Options {
    std::string suite;
    std::string profile = "a100-80gb-dgx";
    std::string format = "table";
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("validate", "Compare the simulator with published measurements");
  app->add_option("suite", o->suite, "Which published measurements: megatron-ptdp")
      ->required()
      ->check(CLI::IsMember({"megatron-ptdp"}));
  app->add_option("--profile", o->profile, "Profile name or file")->capture_default_str();
  add_format_option(*app, o->format);
  app->footer("Example:\n  loom validate megatron-ptdp --format json");
  return {app, [o] {
            const core::Profile profile = core::resolve_profile(o->profile);
            const sim::ValidationReport report = sim::validate_megatron_ptdp(profile);
            if (o->format == "json") std::cout << report_json(report, profile).dump(2) << "\n";
            else print_report(report, profile);
          }};
}

}  // namespace loom::cli
