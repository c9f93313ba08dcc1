// `loom validate [megatron-ptdp|megatron-core-h100]`: the simulator against published
// measurements, one set or both.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "core/profile.hpp"
#include "simulator/megatron_core_validation.hpp"
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

core::Json report_json(const sim::CurrentMegatronReport& report, const core::Profile& profile) {
  core::Json rows = core::Json::array();
  for (const sim::CurrentMegatronRow& row : report.rows) {
    const sim::CurrentMegatronRun& run = row.published;
    const sim::Breakdown& b = row.prediction.breakdown;
    rows.push_back({{"source", run.source_id},
                    {"framework", run.framework},
                    {"model", run.model},
                    {"devices", run.devices},
                    {"tensor_parallel", run.tensor_parallel},
                    {"pipeline_parallel", run.pipeline_parallel},
                    {"data_parallel", row.plan.parallel.data_parallel},
                    {"virtual_stages", run.virtual_stages},
                    {"global_batch_size", run.global_batch_size},
                    {"micro_batch_size", run.micro_batch_size},
                    {"seq_length", run.seq_length},
                    {"published_step_time_s", run.step_time_s},
                    {"predicted_step_time_s", row.prediction.step_time_s},
                    {"published_tokens_per_s", run.tokens_per_s()},
                    {"predicted_tokens_per_s", row.prediction.tokens_per_s},
                    {"error_percent", 100.0 * row.error_fraction},
                    {"dp_comm_exposed_s", b.dp_comm_exposed_s},
                    {"dp_comm_hidden_s", b.dp_comm_hidden_s},
                    {"tp_comm_exposed_s", b.tp_comm_exposed_s},
                    {"tp_comm_hidden_s", b.tp_comm_hidden_s},
                    {"peak_memory_bytes", row.prediction.peak_memory_bytes},
                    {"fits", row.prediction.fits}});
  }
  return {{"format", "loom-validation"},
          {"version", 1},
          {"reference", "NVIDIA dgxc-benchmarking NeMo Megatron GPT-3 175B on H100 (bf16, flash attention, all overlaps; "
                        "sources in simulator/data/megatron_core_h100_sources.md)"},
          {"profile", profile.name},
          {"rows", rows},
          {"mape", report.mean_absolute_percentage_error}};
}

void print_report(const sim::CurrentMegatronReport& report, const core::Profile& profile) {
  fmt::print("Megatron-Core / NeMo pre-training on H100 (NVIDIA dgxc-benchmarking) on profile {} ({})\n", profile.name,
             profile.provenance);
  fmt::print("bf16, flash attention, sequence parallel, TP communication overlap, distributed optimizer with overlapped\n"
             "gradient reduce and parameter gather, no recompute; published step times and tokens/s.\n\n");
  TextTable table({"model", "container", "GPUs", "tp", "pp", "dp", "vpp", "batch", "published", "predicted", "tokens/s",
                   "error", "dp hidden"},
                  {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  for (const sim::CurrentMegatronRow& row : report.rows) {
    const sim::CurrentMegatronRun& run = row.published;
    table.add_row({run.model, run.framework.substr(0, run.framework.find(" (")).substr(run.framework.rfind(':') + 1),
                   std::to_string(run.devices), std::to_string(run.tensor_parallel), std::to_string(run.pipeline_parallel),
                   std::to_string(row.plan.parallel.data_parallel), std::to_string(run.virtual_stages),
                   std::to_string(run.global_batch_size), fmt::format("{:.2f} s", run.step_time_s),
                   fmt::format("{:.2f} s", row.prediction.step_time_s),
                   fmt::format("{:.0f}", row.prediction.tokens_per_s), fmt::format("{:+.1f} %", 100.0 * row.error_fraction),
                   fmt::format("{:.2f} s", row.prediction.breakdown.dp_comm_hidden_s)});
  }
  fmt::print("{}\nMean absolute percentage error: {:.2f} %\n", table.render(), report.mean_absolute_percentage_error);
}

}  // namespace

Command add_validate_command(CLI::App& parent) {
  struct Options {
    std::string suite;
    std::string profile;
    std::string format = "table";
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("validate", "Compare the simulator with published measurements");
  app->add_option("suite", o->suite,
                  "Which published measurements: megatron-ptdp (Megatron-LM 2021 on A100), megatron-core-h100 "
                  "(Megatron-Core / NeMo on H100) [default: both]")
      ->check(CLI::IsMember({"megatron-ptdp", "megatron-core-h100"}));
  app->add_option("--profile", o->profile,
                  "Profile name or file [default: a100-80gb-dgx for megatron-ptdp, h100-80gb-dgx for megatron-core-h100]");
  add_format_option(*app, o->format);
  app->footer("Examples:\n  loom validate\n  loom validate megatron-core-h100 --format json");
  return {app, [o] {
            const bool ptdp = o->suite.empty() || o->suite == "megatron-ptdp";
            const bool current = o->suite.empty() || o->suite == "megatron-core-h100";
            const auto profile_or = [&](const char* fallback) {
              return core::resolve_profile(o->profile.empty() ? fallback : o->profile);
            };
            core::Json both = core::Json::object();
            if (ptdp) {
              const core::Profile profile = profile_or("a100-80gb-dgx");
              const sim::ValidationReport report = sim::validate_megatron_ptdp(profile);
              if (o->format == "json") both["megatron-ptdp"] = report_json(report, profile);
              else print_report(report, profile);
            }
            if (ptdp && current && o->format != "json") fmt::print("\n");
            if (current) {
              const core::Profile profile = profile_or("h100-80gb-dgx");
              const sim::CurrentMegatronReport report = sim::validate_megatron_core_h100(profile);
              if (o->format == "json") both["megatron-core-h100"] = report_json(report, profile);
              else print_report(report, profile);
            }
            // One suite: its document, as before; both: one object holding each under its name.
            if (o->format == "json")
              std::cout << (both.size() == 1 ? both.begin().value() : both).dump(2) << "\n";
          }};
}

}  // namespace loom::cli
