#include "executor/commands/bench_command.hpp"

#include "core/error.hpp"
#include "core/json_reader.hpp"
#include "core/model_arithmetic.hpp"
#include "core/model_presets.hpp"
#include "core/profile.hpp"
#include "executor/comm/world.hpp"  // make_world_communicator, node_local_rank
#include "executor/data/token_source.hpp"
#include "executor/engine/trainer.hpp"
#include "executor/model/precision.hpp"
#include "executor/profile/host.hpp"            // describe_cuda_device
#include "executor/profile/measure.hpp"         // dtype_of
#include "executor/profile/random_tensors.hpp"  // RandomTensors
#include "executor/profile/timing.hpp"          // seconds_now

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sched.h>

#include <algorithm>
#include <iostream>

namespace loom::exec {
namespace {

constexpr std::string_view kBenchModel = "bench-gpt-4x256";
constexpr std::string_view kBenchLlamaModel = "bench-llama-4x256";
constexpr std::string_view kModels[] = {kBenchModel, kBenchLlamaModel, "gpt2-124m", "gpt2-350m"};
constexpr int64_t kMaxSeq = 65536;
constexpr std::string_view kDefaultGpuProfile = "h100-80gb-dgx";

bool is_gpt2(const BenchOptions& o) { return o.model != kBenchModel && o.model != kBenchLlamaModel; }

// The plan's dtype: what --precision says, else bf16 for GPT-2 on a GPU (Megatron's mixed
// precision) and fp32 otherwise (the CPU computes in fp32 whatever a plan says).
core::DType plan_dtype(const BenchOptions& o) {
  if (!o.precision.empty()) return core::parse_dtype(o.precision, "--precision");
  return is_gpt2(o) && o.backend == Backend::cuda ? core::DType::bf16 : core::DType::fp32;
}

// The profile MFU is measured against: --profile, else a GPU's default; none on the CPU, whose
// MFU against a GPU's peak would say nothing (a measured CPU profile may be named).
std::optional<std::string> peak_profile_name(const BenchOptions& o) {
  if (o.profile) return o.profile;
  if (o.backend == Backend::cuda) return std::string(kDefaultGpuProfile);
  return std::nullopt;
}

// The benchmark model: GPT-2 architecture, 4 layers, hidden 256, 4 heads, vocab 256.
core::ModelSpec bench_gpt_4x256() {
  core::ModelSpec m;
  m.name = std::string(kBenchModel);
  m.num_layers = 4;
  m.hidden_size = 256;
  m.num_attention_heads = 4;
  m.num_query_groups = 4;
  m.ffn_hidden_size = 1024;
  m.padded_vocab_size = 256;
  m.seq_length = 256;
  return m;
}

// Its Llama twin of equal FLOPs per token: 4 heads in 2 query groups (q, k, v: 2h² weights), the
// output projection (h²) and SwiGLU with ffn 3h (3·h·3h) make 12h² per layer, as GPT-2's 3h² +
// h² + 8h²; the attention core and the output layer are the same.
core::ModelSpec bench_llama_4x256() {
  core::ModelSpec m = bench_gpt_4x256();
  m.name = std::string(kBenchLlamaModel);
  m.num_query_groups = 2;
  m.ffn_hidden_size = 3 * 256;
  m.activation = core::Activation::swiglu;
  m.normalization = core::Normalization::rmsnorm;
  m.position_embedding = core::PositionEmbedding::rope;
  m.add_bias_linear = false;
  m.untie_embeddings_and_output_weights = true;
  return m;
}

// One rank, one microbatch per step. GPT-2 small and medium keep the tokenizer's vocabulary
// (50257), which the plan pads to a multiple of 128 as Megatron does (50304), and use flash
// attention, as a GPU run of them would.
core::Plan benchmark_plan(const BenchOptions& o) {
  core::Plan plan;
  plan.model = is_gpt2(o) ? core::find_model_preset(o.model).spec
                          : o.model == kBenchLlamaModel ? bench_llama_4x256() : bench_gpt_4x256();
  plan.model.seq_length = o.seq.value_or(is_gpt2(o) ? 1024 : 256);
  const int64_t micro_batch = o.micro_batch.value_or(8);
  plan.training.global_batch_size = micro_batch;
  plan.training.dtype = plan_dtype(o);
  plan.training.train_iters = 1000;
  plan.cluster = {1, 1, peak_profile_name(o).value_or(std::string(kDefaultGpuProfile)), std::nullopt, {}};
  plan.parallel.micro_batch_size = micro_batch;
  if (is_gpt2(o)) plan.parallel.attention_backend = core::AttentionBackend::flash;
  plan.validate();
  return plan;
}

// CPUs the launcher lets this process run on: threads beyond them share cores.
int bench_cpus_allowed() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return 0;
  return CPU_COUNT(&allowed);
}

// The model's largest GEMM, the MLP's [b·s, h] × [h, f], in the compute type.
struct GemmShape {
  int64_t m, k, n;
};
GemmShape mlp_shape(const core::Plan& plan) {
  return {plan.parallel.micro_batch_size * plan.model.seq_length, plan.model.hidden_size, plan.model.ffn_hidden_size};
}

// The CUDA backend's calls return once queued: the clock is read after synchronize(), and the
// calls between two reads are enough that the synchronize's own cost (tens of µs) is small.
double gemm_flops_per_s(Kernels& kernels, const GemmShape& s, ElementType type, double seconds) {
  profile::RandomTensors random(kernels);
  const Tensor a = random.uniform({s.m, s.k}, type), b = random.uniform({s.k, s.n}, type);
  Tensor c({s.m, s.n}, type, kernels.device());
  kernels.matmul(a, false, b, false, c);  // warm-up: first touch, the library's choice of algorithm
  kernels.synchronize();
  double started = profile::seconds_now();
  kernels.matmul(a, false, b, false, c);
  kernels.synchronize();
  const int64_t batch = std::clamp<int64_t>(int64_t(1e-3 / (profile::seconds_now() - started)), 1, 1000);
  int64_t calls = 0;
  started = profile::seconds_now();
  do {
    for (int64_t i = 0; i < batch; ++i) kernels.matmul(a, false, b, false, c);
    kernels.synchronize();
    calls += batch;
  } while (profile::seconds_now() - started < seconds);
  return 2.0 * double(s.m) * double(s.k) * double(s.n) * double(calls) / (profile::seconds_now() - started);
}

struct Measurement {
  double step_time_s = 1e30;
  double gemm_flops_per_s = 0;
  int64_t steps = 0;
  int rounds = 0;
};

// This machine's speed drifts (shared cores, clocks): measure both in alternating rounds and
// keep each one's best, so the ratio compares like with like. As many rounds as fit in the
// time, up to 5, each of at least one step (a GPT-2 step on a CPU takes seconds). Each step
// ends with synchronize(): its time is until its kernels have run.
Measurement measure(Trainer& trainer, Kernels& kernels, const GemmShape& gemm, ElementType type, double seconds) {
  double started = profile::seconds_now();
  trainer.train_step(1);  // warm-up: first allocations
  kernels.synchronize();
  const double warm_up_s = profile::seconds_now() - started;
  Measurement result;
  result.rounds = std::clamp(int(seconds / (2 * warm_up_s)), 1, 5);
  const double per_round = seconds / (2 * result.rounds);
  for (int round = 0; round < result.rounds; ++round) {
    result.gemm_flops_per_s = std::max(result.gemm_flops_per_s, gemm_flops_per_s(kernels, gemm, type, per_round));
    started = profile::seconds_now();
    int64_t in_round = 0;
    do {
      trainer.train_step(2 + result.steps++);
      kernels.synchronize();
      ++in_round;
    } while (profile::seconds_now() - started < per_round);
    result.step_time_s = std::min(result.step_time_s, (profile::seconds_now() - started) / double(in_round));
  }
  return result;
}

struct Peak {
  std::string profile;
  core::DType dtype;
  double flops_per_s;
};

std::optional<Peak> peak_for(const BenchOptions& o, core::DType computed) {
  const std::optional<std::string> name = peak_profile_name(o);
  if (!name) return std::nullopt;
  return Peak{*name, computed, core::resolve_profile(*name).peak_flops_per_s(computed)};
}

// What the run computes in, and why when that is not what was asked.
std::string precision_note(const core::Plan& plan, ElementType computed) {
  if (computed == ElementType::bf16) return "bf16 mixed precision (fp32 master weights, gradients and Adam state)";
  if (plan.training.dtype == core::DType::fp32) return "fp32";
  return fmt::format("fp32 (the CPU backend computes in fp32; --precision {} asked)",
                     core::to_string(plan.training.dtype));
}

struct Report {
  const BenchOptions& options;
  const core::Plan& plan;
  ElementType computed;
  Measurement measured;
  std::optional<Peak> peak;
  std::string device;  // the GPU's name, or the CPU's model name
  int64_t peak_memory_bytes;

  double model_flops_per_s() const { return core::model_flops_per_step(plan) / measured.step_time_s; }
  double tokens_per_s() const {
    return double(plan.training.global_batch_size * plan.model.seq_length) / measured.step_time_s;
  }
};

void print_json(const Report& r) {
  const double achieved = r.model_flops_per_s();
  core::Json out{{"format", "loom-bench-executor"},
                 {"version", 2},
                 {"model", r.plan.model.name},
                 {"backend", to_string(r.options.backend)},
                 {"device", r.device},
                 {"precision", core::to_string(profile::dtype_of(r.computed))},
                 {"requested_precision", core::to_string(r.plan.training.dtype)},
                 {"seq_length", r.plan.model.seq_length},
                 {"micro_batch_size", r.plan.parallel.micro_batch_size},
                 {"threads", r.options.threads},
                 {"cpus_allowed", bench_cpus_allowed()},
                 {"steps", r.measured.steps},
                 {"step_time_s", r.measured.step_time_s},
                 {"tokens_per_s", r.tokens_per_s()},
                 {"model_flops_per_s", achieved},
                 {"gemm_flops_per_s", r.measured.gemm_flops_per_s},
                 {"fraction_of_gemm_rate", achieved / r.measured.gemm_flops_per_s},
                 {"mfu_fraction", nullptr},
                 {"peak_flops_per_s", nullptr},
                 {"peak_profile", nullptr},
                 {"peak_memory_bytes", r.peak_memory_bytes}};
  if (r.peak) {
    out["mfu_fraction"] = achieved / r.peak->flops_per_s;
    out["peak_flops_per_s"] = r.peak->flops_per_s;
    out["peak_profile"] = r.peak->profile;
  }
  std::cout << out.dump(2) << "\n";
}

// "989.0 TFLOP/s" for a GPU's peak, "141.8 GFLOP/s" for a CPU's.
std::string flops_text(double flops_per_s) {
  return flops_per_s >= 1e12 ? fmt::format("{:.1f} TFLOP/s", flops_per_s / 1e12)
                             : fmt::format("{:.1f} GFLOP/s", flops_per_s / 1e9);
}

void print_line(std::string_view label, const std::string& value) { fmt::print("  {:<46} {}\n", label, value); }

void print_text(const Report& r) {
  const core::ModelSpec& m = r.plan.model;
  const GemmShape g = mlp_shape(r.plan);
  const double achieved = r.model_flops_per_s();
  fmt::print("Executor benchmark: {} ({} layers, hidden {}, {} heads, seq {}, vocab {}), micro-batch {}, {} attention, "
             "{}, 1 rank on {}\n",
             m.name, m.num_layers, m.hidden_size, m.num_attention_heads, m.seq_length, r.plan.padded_vocab_size(),
             r.plan.parallel.micro_batch_size, core::to_string(r.plan.parallel.attention_backend),
             precision_note(r.plan, r.computed),
             r.options.backend == Backend::cuda
                 ? fmt::format("CUDA device {}", r.device)
                 : fmt::format("{}, {} thread(s) on {} allowed CPU(s)", r.device, r.options.threads,
                               bench_cpus_allowed()));
  print_line(fmt::format("GEMM rate ({} [{} x {}] x [{} x {}])", core::to_string(profile::dtype_of(r.computed)), g.m,
                         g.k, g.k, g.n),
             fmt::format("{:.1f} GFLOP/s", r.measured.gemm_flops_per_s / 1e9));
  print_line(fmt::format("training step (best round of {}, {} steps)", r.measured.rounds, r.measured.steps),
             fmt::format("{:.1f} ms", r.measured.step_time_s * 1e3));
  print_line("tokens per second", fmt::format("{:.0f} tokens/s", r.tokens_per_s()));
  print_line("model FLOP/s (Megatron's count)",
             fmt::format("{:.1f} GFLOP/s = {:.1f} % of the GEMM rate", achieved / 1e9,
                         100.0 * achieved / r.measured.gemm_flops_per_s));
  if (r.peak)
    print_line("MFU", fmt::format("{:.1f} % of {}'s {} peak, {} (device.peak_flops_per_s.{})",
                                  100.0 * achieved / r.peak->flops_per_s, r.peak->profile,
                                  core::to_string(r.peak->dtype), flops_text(r.peak->flops_per_s),
                                  core::to_string(r.peak->dtype)));
  else
    print_line("MFU", "not measured on the CPU without --profile (a measured CPU profile gives its peak)");
  print_line("peak memory (training)", fmt::format("{:.1f} MiB", double(r.peak_memory_bytes) / double(1 << 20)));
}

}  // namespace

void require_usable(Backend backend) {
  std::string reason;
  if (backend == Backend::cpu || cuda_device_usable(&reason)) return;
  if (!cuda_built()) throw InvalidInput("--backend cuda: {}; use --backend cpu", reason);
  throw InvalidInput("--backend cuda: no usable CUDA device: {}", reason);
}

void check_bench_options(const BenchOptions& options) {
  if (std::find(std::begin(kModels), std::end(kModels), options.model) == std::end(kModels))
    throw InvalidInput("--model '{}' is not a benchmark model; expected {}", options.model, fmt::join(kModels, ", "));
  if (options.seq && (*options.seq < 1 || *options.seq > kMaxSeq))
    throw InvalidInput("--seq {} tokens is out of range; expected 1 to {} tokens", *options.seq, kMaxSeq);
  if (options.micro_batch && *options.micro_batch < 1)
    throw InvalidInput("--micro-batch {} sequences is out of range; expected at least 1", *options.micro_batch);
  if (!options.precision.empty() && options.precision != "fp32" && options.precision != "bf16")
    throw InvalidInput("--precision '{}' is not one the benchmark runs; expected fp32 or bf16", options.precision);
  require_usable(options.backend);
  if (const std::optional<std::string> name = peak_profile_name(options)) core::resolve_profile(*name);
}

int run_benchmark(const BenchOptions& options) {
  const core::Plan plan = benchmark_plan(options);
  // The kernels first: the CUDA backend picks this rank's device, which NCCL then uses.
  std::unique_ptr<Kernels> kernels = make_kernels(options.backend, options.threads, node_local_rank());
  std::unique_ptr<Communicator> world = make_world_communicator(options.backend);
  ProcessGroups groups = make_process_groups(*world, core::RankLayout::of(plan.parallel));
  const std::unique_ptr<TokenSource> tokens = open_tokens(default_corpus_path(), plan.padded_vocab_size());
  Trainer trainer(plan, groups, *world, *kernels, *tokens);
  const ElementType computed = compute_type_for(plan, *kernels);
  const std::optional<Peak> peak = peak_for(options, profile::dtype_of(computed));
  // Training's memory, as `loom-exec run` reports it: not the temporaries of initialization.
  reset_peak_memory(kernels->device());
  const Measurement measured = measure(trainer, *kernels, mlp_shape(plan), computed, options.seconds);
  const std::string device = options.backend == Backend::cuda ? profile::describe_cuda_device().name
                                                               : profile::describe_host().cpu_name;
  const Report report{options, plan, computed, measured, peak, device, memory_stats(kernels->device()).peak_bytes};
  if (options.json) print_json(report);
  else print_text(report);
  return 0;
}

}  // namespace loom::exec
