// `loom bench planner`: how fast the planner evaluates plans and finishes full searches;
// `loom bench executor`: single-rank training speed (and MFU on a GPU), through `loom-exec bench`;
// `loom bench fidelity`: cli/bench_fidelity.cpp.

#include "cli/bench_fidelity.hpp"
#include "cli/command.hpp"
#include "cli/error_relay.hpp"
#include "cli/format.hpp"
#include "cli/launch.hpp"
#include "cli/process.hpp"
#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "planner/benchmark.hpp"

#include <fmt/format.h>

#include <iostream>
#include <optional>
#include <sys/wait.h>

#include <thread>

namespace loom::cli {
namespace {

struct SearchCase {
  const char* label;
  const char* model;
  int64_t devices, global_batch_size;
  bool mixed = false;  // half the nodes A100, then half H100, along the pipeline
};

// The searches the planner issues set targets for (each under 2 s on a 2-core machine), uneven
// layer splits included.
constexpr SearchCase kCases[] = {
    {"GPT-3 175B on 512 A100", "gpt3-175b", 512, 1536},
    {"GPT-3 175B on 1024 A100", "gpt3-175b", 1024, 1536},
    {"1T on 3072 A100", "megatron-1t", 3072, 3072},
    {"GPT-3 175B on 512 A100 + 512 H100", "gpt3-175b", 1024, 1536, true},
};

plan::SearchRequest request_for(const SearchCase& c) {
  plan::SearchRequest r;
  r.model = core::find_model_preset(c.model).spec;
  r.model.seq_length = 2048;
  r.training.global_batch_size = c.global_batch_size;
  r.devices = c.devices;
  r.devices_per_node = 8;
  r.profile_name = "a100-80gb-dgx";
  r.profile = core::resolve_profile(r.profile_name);
  if (c.mixed) {
    const int64_t nodes = c.devices / r.devices_per_node / 2;
    r.groups = {{nodes, r.devices_per_node, "a100-80gb-dgx"}, {nodes, r.devices_per_node, "h100-80gb-dgx"}};
    for (const core::DeviceGroup& group : r.groups) r.group_profiles.push_back(core::resolve_profile(group.profile));
  }
  return r;
}

}  // namespace

Command add_bench_command(CLI::App& parent) {
  struct Options {
    std::string what;
    std::string format = "table";
    double seconds = 2.0;
    int repeats = 3;
    int threads = 0;
    FidelityOptions fidelity;
    // executor: passed through to `loom-exec bench` as given (it checks them).
    std::string backend = "cpu", precision;
    std::optional<int64_t> seq, micro_batch;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("bench", "Measure Loom's own speed");
  app->add_option("what", o->what,
                  "What to measure: planner, executor (single-rank training vs GEMM rate), or fidelity (the "
                  "simulator's predictions against training runs on this machine)")
      ->required()
      ->check(CLI::IsMember({"planner", "executor", "fidelity"}));
  app->add_option("--seconds", o->seconds, "Time spent measuring the evaluation rate, per thread count")
      ->check(finite_positive_number(3600.0))
      ->capture_default_str();
  app->add_option("--repeats", o->repeats, "planner: runs of each full search (the fastest is reported); fidelity: runs of each plan, round-robin over the plans (the median is reported with their spread)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app->add_option("--threads", o->threads,
                  "executor: threads of its one rank; fidelity: threads per rank of the profile it measures "
                  "[default: cores / ranks]")
      ->check(CLI::Range(1, 1024));
  CLI::Option* model = app->add_option(
      "--model", o->fidelity.model,
      "fidelity: model preset to train [default: loom-tiny; the Llama plans always train loom-tiny-llama]; "
      "executor: bench-gpt-4x256, bench-llama-4x256 (its Llama twin of equal FLOPs), gpt2-124m or gpt2-350m "
      "[default: bench-gpt-4x256]");
  CLI::Option* profile = app->add_option(
      "--profile", o->fidelity.profile,
      "fidelity: measured CPU profile [default: profile this machine first]; executor: the profile whose peak FLOP/s "
      "the MFU is measured against [default: h100-80gb-dgx with cuda, none with cpu]");
  const std::vector<CLI::Option*> executor_only = {
      app->add_option("--backend", o->backend, "executor: cpu or cuda")
          ->check(CLI::IsMember({"cpu", "cuda"}))
          ->capture_default_str(),
      app->add_option("--seq", o->seq, "executor: sequence length in tokens [default: 256; GPT-2: 1024]"),
      app->add_option("--micro-batch", o->micro_batch, "executor: sequences per step [default: 8]"),
      app->add_option("--precision", o->precision,
                      "executor: fp32 or bf16 [default: bf16 for GPT-2 with cuda, else fp32; the CPU computes in "
                      "fp32]")};
  app->add_option("--steps", o->fidelity.steps, "fidelity: steps per plan")->check(CLI::Range(4, 100000))->capture_default_str();
  app->add_option("--max-ranks", o->fidelity.max_ranks, "fidelity: largest plans to train")
      ->check(CLI::IsMember({1, 2, 4}))
      ->capture_default_str();
  app->add_flag("--calibrate", o->fidelity.calibrate,
                "fidelity: also fit the measured profile to half of the plans (loom calibrate's fit) and report the "
                "other half's error before and after");
  app->add_option("--work-dir", o->fidelity.work_dir, "fidelity: keep plans, store and logs here [default: a temporary folder]");
  add_format_option(*app, o->format);
  app->footer(
      "Examples:\n  loom bench planner --format json\n  loom bench executor\n  loom bench executor --model bench-llama-4x256\n"
      "  loom bench executor --backend cuda --model gpt2-124m --seq 1024 --precision bf16\n"
      "  loom bench fidelity --work-dir fidelity");
  return {app, [o, model, profile, executor_only] {
            for (const CLI::Option* option : executor_only)
              if (option->count() > 0 && o->what != "executor")
                throw InvalidInput("{} is an option of `loom bench executor`, not of `loom bench {}`",
                                   option->get_name(), o->what);
            if (o->what == "fidelity") {
              o->fidelity.format = o->format;
              o->fidelity.threads = o->threads;
              o->fidelity.repeats = o->repeats;
              run_fidelity_benchmark(o->fidelity);
              return;
            }
            if (o->what == "executor") {
              // Launched like `loom run` launches one rank, so that the speed measured is the one it gets.
              const Launch launch = launch_for({"mpirun", 1, 1, o->threads, cores_of_this_host()});
              print_launch_warning(launch);
              std::vector<std::string> command = launch.launcher_args;
              command.insert(command.end(), {executor_path(), "bench", "--threads", std::to_string(launch.threads_per_rank),
                                             "--seconds", fmt::format("{}", o->seconds)});
              auto add = [&command](const char* flag, const std::string& value) {
                command.insert(command.end(), {flag, value});
              };
              if (o->backend != "cpu") add("--backend", o->backend);
              if (model->count() > 0) add("--model", o->fidelity.model);
              if (o->seq) add("--seq", std::to_string(*o->seq));
              if (o->micro_batch) add("--micro-batch", std::to_string(*o->micro_batch));
              if (!o->precision.empty()) add("--precision", o->precision);
              if (profile->count() > 0) add("--profile", o->fidelity.profile);
              if (o->format == "json") command.push_back("--json");
              fmt::print(stderr, "loom: {}\n", fmt::join(command, " "));
              // A bad option is the executor's one line and status 2, said as `loom`'s own.
              ErrorRelay errors;
              const int status = spawn_and_wait(command, "", {}, &errors);
              if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw_executor_failure(status, errors);
              return;
            }
            const int cores = std::max(1, int(std::thread::hardware_concurrency()));
            const plan::SearchRequest rate_request = request_for(kCases[1]);
            std::vector<plan::EvaluationRate> rates;
            for (int threads : {1, cores})
              if (rates.empty() || threads != rates.back().threads)
                rates.push_back(plan::measure_evaluation_rate(rate_request, threads, o->seconds));
            std::vector<std::pair<const SearchCase*, plan::SearchStats>> searches;
            for (const SearchCase& c : kCases) {
              plan::SearchStats best;
              for (int i = 0; i < std::max(1, o->repeats); ++i) {
                const plan::SearchStats stats = plan::search(request_for(c)).stats;
                if (i == 0 || stats.elapsed_s < best.elapsed_s) best = stats;
              }
              searches.emplace_back(&c, best);
            }
            if (o->format == "json") {
              core::Json out = {{"format", "loom-bench-planner"}, {"version", 1}, {"cores", cores}};
              for (const plan::EvaluationRate& r : rates)
                out["evaluation_rate"].push_back({{"threads", r.threads}, {"evaluations", r.evaluations},
                                                  {"seconds", r.seconds}, {"evaluations_per_s", r.per_second()}});
              for (const auto& [c, s] : searches)
                out["searches"].push_back({{"case", c->label}, {"combinations", s.combinations}, {"valid", s.valid},
                                           {"fitting", s.fitting}, {"simulated", s.simulated},
                                           {"elapsed_s", s.elapsed_s}});
              std::cout << out.dump(2) << "\n";
              return;
            }
            fmt::print("Plan evaluations (memory + step-time bound of every valid plan), GPT-3 175B on 1024 A100\n");
            TextTable rate_table({"threads", "evaluations", "time", "evaluations/s"}, {0, 1, 2, 3});
            for (const plan::EvaluationRate& r : rates)
              rate_table.add_row({std::to_string(r.threads), with_thousands(r.evaluations), fmt::format("{:.2f} s", r.seconds),
                                  with_thousands(int64_t(r.per_second()))});
            fmt::print("{}\nFull searches (fastest of {}, all cores)\n", rate_table.render(), o->repeats);
            TextTable search_table({"search", "combinations", "valid", "fit", "simulated", "wall time"}, {1, 2, 3, 4, 5});
            for (const auto& [c, s] : searches)
              search_table.add_row({c->label, with_thousands(s.combinations), with_thousands(s.valid),
                                    with_thousands(s.fitting), with_thousands(s.simulated),
                                    fmt::format("{:.3f} s", s.elapsed_s)});
            fmt::print("{}", search_table.render());
          }};
}

}  // namespace loom::cli
