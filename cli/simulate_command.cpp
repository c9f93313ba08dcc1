// `loom simulate [PLAN.json]`: predicts one training step of a plan on a profile.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "cli/output_targets.hpp"
#include "cli/pipeline_stages.hpp"
#include "cli/plan_profiles.hpp"
#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/output_file.hpp"
#include "core/plan_json.hpp"
#include "simulator/prediction.hpp"
#include "simulator/trace.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <vector>

namespace loom::cli {
namespace {

std::string seconds(double s) {
  if (s >= 1.0) return fmt::format("{:.3f} s", s);
  if (s >= 1e-3) return fmt::format("{:.2f} ms", s * 1e3);
  return fmt::format("{:.1f} µs", s * 1e6);
}

std::string gib(int64_t bytes) { return fmt::format("{:.2f}", double(bytes) / double(int64_t(1) << 30)); }

std::string share(double part, double whole) { return whole > 0 ? fmt::format("{:.1f} %", 100.0 * part / whole) : "-"; }

void print_prediction(const core::Plan& plan, const sim::Prediction& p, const std::string& origin) {
  const core::ParallelPlan& par = plan.parallel;
  fmt::print("Prediction for {} ({}) on {} × {} (profile {})\n", plan.model.name.empty() ? "the model" : plan.model.name,
             origin, plan.cluster.world_size(), p.profile_name, p.profile_name);
  std::string overlaps;
  if (par.overlap_grad_reduce) overlaps += " · overlap-grad-reduce";
  if (par.overlap_param_gather) overlaps += " · overlap-param-gather";
  if (par.tp_comm_overlap) overlaps += " · tp-comm-overlap";
  fmt::print("  tp {} · pp {} · dp {} · vpp {} · micro-batch {} · {} microbatches · {} · recompute {}{}{} · {} attention{} · "
             "{}\n\n",
             par.tensor_parallel, par.pipeline_parallel, par.data_parallel, plan.virtual_stages(), par.micro_batch_size,
             plan.microbatches(), core::to_string(par.schedule), core::to_string(par.recompute),
             par.sequence_parallel ? " · sequence parallel" : "", par.distributed_optimizer ? " · distributed optimizer" : "",
             core::to_string(par.attention_backend), overlaps,
             p.dtype == plan.training.dtype
                 ? std::string(core::to_string(p.dtype))
                 : fmt::format("{} (the plan asks {}; this device computes in {} only)", core::to_string(p.dtype),
                               core::to_string(plan.training.dtype), core::to_string(p.dtype)));

  TextTable headline({"quantity", "value"}, {1});
  headline.add_row({"step time", seconds(p.step_time_s)});
  headline.add_row({"throughput", fmt::format("{} tokens/s", with_thousands(int64_t(p.tokens_per_s)))});
  headline.add_row({"model TFLOP/s per device", fmt::format("{:.1f} TFLOP/s", p.model_tflops_per_device)});
  headline.add_row({"hardware TFLOP/s per device", fmt::format("{:.1f} TFLOP/s (with recompute)", p.hardware_tflops_per_device)});
  headline.add_row({"MFU", fmt::format("{:.1f} %", 100.0 * p.mfu)});
  headline.add_row({"peak memory", fmt::format("{} GiB of {} GiB{}", gib(p.peak_memory_bytes), gib(p.device_memory_bytes),
                                               p.fits ? "" : "  (DOES NOT FIT)")});
  fmt::print("{}\n", headline.render());

  const sim::Breakdown& b = p.breakdown;
  fmt::print("Step time breakdown (pipeline rank {}, the last to finish)\n", p.critical_pipeline_rank);
  TextTable breakdown({"part", "time", "share"}, {1, 2});
  const std::pair<const char*, double> parts[] = {
      {"forward", b.forward_s},           {"backward", b.backward_s},
      {"recompute", b.recompute_s},       {"tensor-parallel comm (exposed)", b.tp_comm_exposed_s},
      {"pipeline comm (exposed)", b.pp_comm_exposed_s}, {"pipeline bubble", b.pp_bubble_s},
      {"data-parallel comm (exposed)", b.dp_comm_exposed_s}, {"optimizer", b.optimizer_s}};
  for (const auto& [name, value] : parts) breakdown.add_row({name, seconds(value), share(value, p.step_time_s)});
  breakdown.add_row({"total", seconds(b.total_s()), share(b.total_s(), p.step_time_s)});
  fmt::print("{}", breakdown.render());
  fmt::print("  hidden behind compute (not in the total): tensor-parallel {}, data-parallel {}\n",
             seconds(b.tp_comm_hidden_s), seconds(b.dp_comm_hidden_s));
  fmt::print("  on the links (overlapped or not): tensor-parallel {}, pipeline {}, data-parallel {}\n\n",
             seconds(p.on_link.tp_comm_s), seconds(p.on_link.pp_comm_s), seconds(p.on_link.dp_comm_s));

  fmt::print("Memory per device by pipeline stage (GiB)\n");
  TextTable memory({"stage", "weights", "gradients", "optimizer", "activations", "other", "total"}, {0, 1, 2, 3, 4, 5, 6});
  for (size_t i = 0; i < p.memory.size(); ++i) {
    if (p.memory.size() > 12 && i == 4) {
      memory.add_row({"…"});
      i = p.memory.size() - 4;
    }
    const sim::StageMemory& m = p.memory[i];
    memory.add_row({std::to_string(i), gib(m.weights_bytes), gib(m.gradients_bytes), gib(m.optimizer_bytes),
                    gib(m.activations_bytes), gib(m.other_bytes), gib(m.total_bytes())});
  }
  fmt::print("{}", memory.render());

  // Which stage sets the pace: the one an uneven split or another placement would relieve.
  fmt::print("\nPipeline stages: layers {}{}\n", layer_split_text(plan),
             plan.cluster.mixed() ? "; " + placement_text(plan) : std::string());
  fmt::print("{}", pipeline_stage_table(plan, &p));
  const size_t bottleneck = size_t(p.bottleneck_pipeline_stage);
  if (bottleneck < p.stages.size())
    fmt::print("  bottleneck: pipeline stage {} ({} layers on {}), busy {} of the {} step\n", bottleneck,
               p.stages[bottleneck].layers, p.stages[bottleneck].profile_name, seconds(p.stages[bottleneck].busy_s),
               seconds(p.step_time_s));
}

}  // namespace

Command add_simulate_command(CLI::App& parent) {
  struct Options {
    std::string plan_path;
    std::string profile;
    std::string format = "table";
    std::string trace_path;
    bool overlap_grad_reduce = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("simulate", "Predict a plan's step time, breakdown and memory per stage");
  app->add_option("plan", o->plan_path, "Plan JSON file ('-' reads standard input); without it, the built-in default plan");
  app->add_option("--profile", o->profile, "Profile name or file [default: the plan's cluster profile; a mixed cluster's groups name their own, so "
                  "it is refused there]");
  add_format_option(*app, o->format);
  app->add_option("--trace", o->trace_path,
                  "Write the timeline as Chrome trace-event JSON (open in Perfetto); '-': standard output, alone");
  app->add_flag("--overlap-grad-reduce", o->overlap_grad_reduce,
                "Simulate the plan with overlap-grad-reduce=true (the plan's key, Megatron's flag): gradient buckets "
                "reduced during the backward");
  app->footer("Examples:\n  loom simulate\n  loom simulate plan.json --format json\n"
              "  loom simulate plan.json --trace step.json   # open step.json in ui.perfetto.dev");
  return {app, [o] {
            const std::vector<std::filesystem::path> inputs = {o->plan_path, profile_file_input(o->profile)};
            if (!o->trace_path.empty()) core::check_output_target(o->trace_path, inputs);
            const bool builtin = o->plan_path.empty();
            core::Plan plan = builtin ? core::default_plan() : core::read_plan_file(o->plan_path);
            if (o->overlap_grad_reduce) plan.parallel.overlap_grad_reduce = true;
            plan.validate();
            const std::vector<core::Profile> profiles = plan_profiles(plan, o->profile);
            sim::SimulationOptions options;
            options.record_timeline = !o->trace_path.empty();
            const sim::Prediction prediction = simulate_on(plan, profiles, options);
            if (!o->trace_path.empty())
              core::write_output_file(o->trace_path, sim::chrome_trace_text(plan, prediction), inputs);
            // Standard output holds the trace alone, so that it can be piped into a tool.
            if (o->trace_path == core::kStandardOutputName) return;
            if (o->format == "json") {
              std::cout << sim::to_json(prediction).dump(2) << "\n";
            } else {
              print_prediction(plan, prediction, builtin ? "built-in default plan" : o->plan_path);
              if (!o->trace_path.empty()) fmt::print("\nTrace written to {} (open it in https://ui.perfetto.dev)\n", o->trace_path);
            }
          }};
}

}  // namespace loom::cli
