// `loom bench fidelity`: how well the simulator, fed by a profile measured on this machine,
// predicts the executor on this machine. Profiles (quick), trains a set of small-GPT plans (GPT-2 and Llama) on
// 1, 2 and 4 CPU ranks covering every kind of parallelism, and sets each plan's measured step
// time and peak memory beside its prediction, with how much the machine's own speed drifted.

#include "cli/bench_fidelity.hpp"

#include "cli/format.hpp"
#include "cli/launch.hpp"
#include "cli/process.hpp"
#include "core/error.hpp"
#include "core/json_reader.hpp"
#include "core/model_presets.hpp"
#include "core/output_file.hpp"
#include "core/plan_json.hpp"
#include "core/store.hpp"
#include "core/train_spec.hpp"
#include "simulator/cost_model.hpp"
#include "simulator/run_comparison.hpp"

#include <fmt/format.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>

namespace loom::cli {
namespace {

struct FidelityCase {
  const char* label;
  int64_t tp = 1, pp = 1, dp = 1;
  core::Schedule schedule = core::Schedule::one_f_one_b;
  int64_t layers_per_virtual_stage = 0;
  core::Recompute recompute = core::Recompute::none;
  bool sequence_parallel = false, distributed_optimizer = false;
  core::AttentionBackend attention = core::AttentionBackend::unfused;
  bool overlap = false;  // overlap-grad-reduce, with the distributed optimizer overlap-param-gather too
  // The model instead of --model's: the Llama cases train loom-tiny-llama whatever --model says.
  const char* model = nullptr;
};

constexpr const char* kLlamaModel = "loom-tiny-llama";

// Every layout the executor runs: data, tensor (with and without sequence parallelism) and
// pipeline parallelism, both pipeline schedules, interleaving, both recompute modes and the
// distributed optimizer, flash attention and the overlapped data-parallel buckets, on 1, 2 and 4
// ranks.
const std::vector<FidelityCase>& fidelity_cases() {
  using core::Recompute;
  using core::Schedule;
  static const std::vector<FidelityCase> cases = {
      {"1 rank"},
      {"1 rank, full recompute", 1, 1, 1, Schedule::one_f_one_b, 0, Recompute::full},
      {"dp2", 1, 1, 2},
      {"dp2 + distributed optimizer", 1, 1, 2, Schedule::one_f_one_b, 0, Recompute::none, false, true},
      {"tp2", 2, 1, 1},
      {"tp2 + sp, selective recompute", 2, 1, 1, Schedule::one_f_one_b, 0, Recompute::selective, true},
      {"pp2 1f1b", 1, 2, 1},
      {"pp2 gpipe", 1, 2, 1, Schedule::gpipe},
      {"pp2 interleaved", 1, 2, 1, Schedule::interleaved, 1},
      {"tp2 pp2", 2, 2, 1},
      {"dp2 pp2 + distributed optimizer", 1, 2, 2, Schedule::one_f_one_b, 0, Recompute::none, false, true},
      {"dp4", 1, 1, 4},
      {"1 rank, flash attention", 1, 1, 1, Schedule::one_f_one_b, 0, Recompute::none, false, false,
       core::AttentionBackend::flash},
      {"tp2 pp2, flash attention", 2, 2, 1, Schedule::one_f_one_b, 0, Recompute::none, false, false,
       core::AttentionBackend::flash},
      {"dp2, overlap-grad-reduce", 1, 1, 2, Schedule::one_f_one_b, 0, Recompute::none, false, false,
       core::AttentionBackend::unfused, true},
      {"dp2 pp2 + distributed optimizer, flash, overlaps", 1, 2, 2, Schedule::one_f_one_b, 0, Recompute::none, false,
       true, core::AttentionBackend::flash, true},
      // The Llama architecture (GQA, SwiGLU, RMSNorm, rope, untied), in the layouts that split it
      // differently from GPT-2: query groups over tensor ranks, the untied head on the last stage.
      {"llama: 1 rank", 1, 1, 1, Schedule::one_f_one_b, 0, Recompute::none, false, false,
       core::AttentionBackend::unfused, false, kLlamaModel},
      {"llama: tp2 + sp, selective recompute", 2, 1, 1, Schedule::one_f_one_b, 0, Recompute::selective, true, false,
       core::AttentionBackend::unfused, false, kLlamaModel},
      {"llama: pp2 interleaved", 1, 2, 1, Schedule::interleaved, 1, Recompute::none, false, false,
       core::AttentionBackend::unfused, false, kLlamaModel},
      {"llama: dp2 + distributed optimizer, flash", 1, 1, 2, Schedule::one_f_one_b, 0, Recompute::none, false, true,
       core::AttentionBackend::flash, false, kLlamaModel},
  };
  return cases;
}

core::Plan plan_for(const FidelityCase& c, const FidelityOptions& o, const std::string& profile_path) {
  core::Plan plan;
  plan.model = core::resolve_model(c.model ? std::string(c.model) : o.model);
  plan.cluster.nodes = 1;
  plan.cluster.devices_per_node = c.tp * c.pp * c.dp;
  plan.cluster.profile = profile_path;
  plan.parallel.tensor_parallel = c.tp;
  plan.parallel.pipeline_parallel = c.pp;
  plan.parallel.data_parallel = c.dp;
  plan.parallel.schedule = c.schedule;
  if (c.layers_per_virtual_stage > 0) plan.parallel.layers_per_virtual_stage = c.layers_per_virtual_stage;
  plan.parallel.recompute = c.recompute;
  plan.parallel.sequence_parallel = c.sequence_parallel;
  plan.parallel.distributed_optimizer = c.distributed_optimizer;
  plan.parallel.attention_backend = c.attention;
  plan.parallel.overlap_grad_reduce = c.overlap;
  plan.parallel.overlap_param_gather = c.overlap && c.distributed_optimizer;
  plan.parallel.micro_batch_size = o.micro_batch_size;
  plan.training.global_batch_size = o.global_batch_size;
  plan.training.dtype = core::DType::fp32;  // what the CPU executor computes in
  plan.training.train_iters = o.steps;
  plan.training.lr_warmup_iters = 1;
  plan.validate();
  return plan;
}

struct FidelityRow {
  std::string label;
  int64_t ranks = 0;
  double predicted_step_s = 0, measured_step_s = 0;
  double predicted_memory_bytes = 0, measured_memory_bytes = 0;
  // The probe's time around the run over its time next to the profile: 1.2 means the machine
  // ran 20 % slower during this run than while it was profiled.
  double slowdown = 1.0;
  double step_error_percent() const { return sim::error_percent(predicted_step_s, measured_step_s); }
  double memory_error_percent() const { return sim::error_percent(predicted_memory_bytes, measured_memory_bytes); }
};

// Seconds of `loom-exec probe` now (see executor/profile/probe.hpp).
double probe_s(const std::filesystem::path& work) {
  static int count = 0;
  const std::string out = (work / fmt::format("probe-{:03}.json", count++)).string();
  std::filesystem::remove(out);  // the child's output is appended to it
  const int status = spawn_and_wait({executor_path(), "probe", "--json"}, out);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw Error("the machine-speed probe failed; see {}", out);
  return core::parse_json_text(core::read_text_file(out), out).at("probe_s").get<double>();
}

void run_child(const std::vector<std::string>& command, const std::string& log, const std::string& what) {
  const int status = spawn_and_wait(command, log);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("{} failed; its output is in {}", what, log);
}

// Trains the plan, then reads back what the run measured: the steady step time and the largest
// allocator high-water mark of any rank.
FidelityRow measure(const FidelityCase& c, const core::Plan& plan,
                    const std::filesystem::path& work, const FidelityOptions& o, int index, double baseline_probe_s) {
  const std::string plan_path = (work / fmt::format("plan-{:02}.json", index)).string();
  core::write_output_file(plan_path, core::to_json(plan).dump(2) + "\n");
  const std::string db = (work / "fidelity.db").string();
  const double probe_before = probe_s(work);
  // No --threads: `loom run` takes the profile's and binds the ranks by the launch rule, as it does
  // for a user (an explicit thread count here once hid ranks pinned to one core).
  run_child({loom_path(), "run", plan_path, "--db", db, "--steps", std::to_string(o.steps)}, (work / "runs.log").string(),
            fmt::format("the run of '{}'", c.label));
  const double probe_after = probe_s(work);
  core::Store store = core::Store::open(db);
  const sim::RunComparison compared = sim::compare_run(store, store.list_runs().back().id, plan.cluster.profile);
  FidelityRow row;
  row.label = c.label;
  row.ranks = plan.cluster.world_size();
  row.slowdown = 0.5 * (probe_before + probe_after) / baseline_probe_s;
  const sim::ComparisonRow& step_time = compared.rows.front();
  row.predicted_step_s = step_time.predicted;
  row.measured_step_s = step_time.measured.value_or(0.0);  // a run with steps always has its step time
  for (const sim::RankMemoryComparison& rank : compared.ranks) {
    row.measured_memory_bytes = std::max(row.measured_memory_bytes, rank.measured_peak_bytes);
    row.predicted_memory_bytes = std::max(row.predicted_memory_bytes, rank.predicted_peak_bytes);
  }
  return row;
}

struct KernelCheck {
  std::string table;
  int64_t samples = 0, within_10_percent = 0;
  double mean_absolute_error_percent = 0, worst_error_percent = 0;
};

// Each sample of the off-grid profile against what the profile predicts for its size, per table.
std::vector<KernelCheck> check_kernels(const core::Profile& profile, const core::Profile& off_grid) {
  const sim::CostModel costs(profile, core::DType::fp32);
  std::map<std::string, std::vector<double>> errors;
  for (const core::GemmSample& s : off_grid.tables.gemm)
    errors[fmt::format("gemm {}", core::to_string(s.layout))].push_back(
        sim::error_percent(costs.gemm_s(s.m, s.n, s.k, 1, s.layout), s.time_s));
  for (const core::AttentionSample& s : off_grid.tables.attention)
    errors[fmt::format("attention {} {}", core::to_string(s.backend), s.backward ? "backward" : "forward")].push_back(
        sim::error_percent(costs.attention_s(s.batch, s.seq, s.head_dim, s.backward, s.backend), s.time_s));
  for (const core::KernelSample& s : off_grid.tables.kernels)
    errors[s.kernel].push_back(sim::error_percent(costs.elementwise_s(s.kernel, double(s.bytes)), s.time_s));
  std::vector<KernelCheck> checks;
  for (const auto& [table, list] : errors) {
    KernelCheck c{table, int64_t(list.size())};
    for (double e : list) {
      c.mean_absolute_error_percent += std::abs(e) / double(list.size());
      if (std::abs(e) > std::abs(c.worst_error_percent)) c.worst_error_percent = e;
      if (std::abs(e) <= 10.0) ++c.within_10_percent;
    }
    checks.push_back(c);
  }
  return checks;
}

double mean_absolute(const std::vector<FidelityRow>& rows, double (FidelityRow::*error)() const) {
  double sum = 0;
  for (const FidelityRow& r : rows) sum += std::abs((r.*error)());
  return rows.empty() ? 0.0 : sum / double(rows.size());
}

}  // namespace

void run_fidelity_benchmark(const FidelityOptions& o) {
  const std::filesystem::path work =
      o.work_dir.empty() ? std::filesystem::temp_directory_path() / fmt::format("loom-fidelity-{}", getpid())
                         : std::filesystem::path(o.work_dir);
  std::filesystem::create_directories(work);
  std::string profile_path = o.profile;
  if (!profile_path.empty() && o.threads > 0)
    throw InvalidInput("--threads sets the threads of the profile bench fidelity measures; profile '{}' has its own",
                       profile_path);
  if (profile_path.empty()) {
    profile_path = (work / "profile.json").string();
    // Every plan's ranks get the profile's threads: chosen so that the largest plans fit the cores.
    const int threads = o.threads > 0 ? o.threads : default_threads_per_rank(o.max_ranks, cores_of_this_host());
    fmt::print(stderr, "loom: profiling this machine (quick, {} ranks, {} thread(s) per rank) into {}\n",
               o.profile_ranks, threads, profile_path);
    run_child({loom_path(), "profile", "--quick", "--ranks", std::to_string(o.profile_ranks), "--threads",
               std::to_string(threads), "--out", profile_path},
              (work / "profile.log").string(), "the profile measurement");
  }
  const core::Profile profile = core::resolve_profile(profile_path);
  if (profile.device.host_cores <= 0)
    throw InvalidInput("profile '{}' has no device.host_cores; expected a CPU profile measured by `loom profile`",
                       profile_path);
  // The machine's speed next to the profile: right after measuring it, or now for a given one.
  const double baseline_probe_s = probe_s(work);

  // Kernel times at sizes the profile did not measure, right after it (little drift in between).
  const std::string off_grid_path = (work / "off-grid.json").string();
  fmt::print(stderr, "loom: measuring kernels between the grid's points into {}\n", off_grid_path);
  // With the profile's threads: a kernel's time depends on them.
  run_child({loom_path(), "profile", "--off-grid", "--ranks", "2", "--threads",
             std::to_string(profile.device.threads_per_rank), "--out", off_grid_path},
            (work / "off-grid.log").string(), "the off-grid measurement");
  const std::vector<KernelCheck> kernel_checks =
      check_kernels(profile, core::resolve_profile(off_grid_path));

  std::vector<FidelityRow> rows;
  int index = 0;
  for (const FidelityCase& c : fidelity_cases()) {
    const core::Plan plan = plan_for(c, o, profile_path);
    if (plan.cluster.world_size() > o.max_ranks) continue;
    fmt::print(stderr, "loom: training '{}' ({} ranks, {} steps)\n", c.label, plan.cluster.world_size(), o.steps);
    rows.push_back(measure(c, plan, work, o, index++, baseline_probe_s));
  }
  const double step_mape = mean_absolute(rows, &FidelityRow::step_error_percent);
  const double memory_mape = mean_absolute(rows, &FidelityRow::memory_error_percent);

  if (o.format == "json") {
    core::Json out = {{"format", "loom-bench-fidelity"}, {"version", 1},        {"model", o.model},
                      {"profile", profile_path},         {"steps", o.steps},    {"host_cores", profile.device.host_cores},
                      {"step_time_mape_percent", step_mape},
                      {"peak_memory_mape_percent", memory_mape}};
    out["kernels"] = core::Json::array();
    for (const KernelCheck& c : kernel_checks)
      out["kernels"].push_back({{"table", c.table},
                                {"samples", c.samples},
                                {"within_10_percent", c.within_10_percent},
                                {"mean_absolute_error_percent", c.mean_absolute_error_percent},
                                {"worst_error_percent", c.worst_error_percent}});
    out["plans"] = core::Json::array();
    for (const FidelityRow& r : rows)
      out["plans"].push_back({{"plan", r.label},
                              {"ranks", r.ranks},
                              {"predicted_step_time_s", r.predicted_step_s},
                              {"measured_step_time_s", r.measured_step_s},
                              {"step_time_error_percent", r.step_error_percent()},
                              {"machine_slowdown", r.slowdown},
                              {"predicted_peak_memory_bytes", r.predicted_memory_bytes},
                              {"measured_peak_memory_bytes", r.measured_memory_bytes},
                              {"peak_memory_error_percent", r.memory_error_percent()}});
    std::cout << out.dump(2) << "\n";
    return;
  }
  int64_t samples = 0, within = 0;
  TextTable kernels({"kernel table", "off-grid sizes", "within 10 %", "mean |error|", "worst error"}, {1, 2, 3, 4});
  for (const KernelCheck& c : kernel_checks) {
    samples += c.samples;
    within += c.within_10_percent;
    kernels.add_row({c.table, std::to_string(c.samples), std::to_string(c.within_10_percent),
                     fmt::format("{:.1f} %", c.mean_absolute_error_percent), fmt::format("{:+.1f} %", c.worst_error_percent)});
  }
  fmt::print("Kernel times at sizes between the profile's grid points, predicted by interpolation in the profile\n{}"
             "{} of {} sizes within 10 % (target: all)\n\n",
             kernels.render(), within, samples);
  fmt::print("{} on this machine ({} cores), {} steps per plan (the first {} excluded), fp32; profile {}\n", o.model,
             profile.device.host_cores, o.steps, core::warmup_steps(o.steps),
             profile_path);
  TextTable table({"plan", "ranks", "predicted step", "measured step", "error", "machine", "predicted peak",
                   "measured peak", "error"},
                  {1, 2, 3, 4, 5, 6, 7, 8});
  for (const FidelityRow& r : rows)
    table.add_row({r.label, std::to_string(r.ranks), fmt::format("{:.2f} ms", r.predicted_step_s * 1e3),
                   fmt::format("{:.2f} ms", r.measured_step_s * 1e3), fmt::format("{:+.1f} %", r.step_error_percent()),
                   fmt::format("{:+.0f} %", 100.0 * (r.slowdown - 1.0)),
                   human_bytes(r.predicted_memory_bytes), human_bytes(r.measured_memory_bytes),
                   fmt::format("{:+.1f} %", r.memory_error_percent())});
  fmt::print("{}Mean absolute error over {} plans: step time {:.1f} % (target 5 %), peak memory {:.1f} % (target 3 %)\n"
             "machine: how much slower than while it was profiled this machine ran a fixed probe (loom-exec probe) "
             "around the run; a shared machine drifts, and an error of the same size may be the machine's\n",
             table.render(), rows.size(), step_mape, memory_mape);
}

}  // namespace loom::cli
