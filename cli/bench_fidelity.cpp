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
#include "simulator/calibration.hpp"
#include "simulator/cost_model.hpp"
#include "simulator/run_comparison.hpp"

#include <fmt/format.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>

namespace loom::cli {
namespace {

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

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

// One run of a plan: what it measured, and the probes around it.
struct FidelityRun {
  int64_t run_id = 0;
  double measured_step_s = 0;
  double measured_dp_wait_s = 0;  // the wait for the slowest data rank, per step (compared stage)
  double measured_memory_bytes = 0;
  // The load probe's time around the run over its time next to the profile: 1.2 means the
  // machine, with every core busy, ran 20 % slower during this run than while it was profiled.
  double load_slowdown = 1.0;
};

struct FidelityRow {
  std::string label;
  int64_t ranks = 0;
  double predicted_step_s = 0, predicted_memory_bytes = 0;
  std::vector<FidelityRun> runs;  // one per repeat, in order

  std::vector<double> steps() const {
    std::vector<double> out;
    for (const FidelityRun& r : runs) out.push_back(r.measured_step_s);
    return out;
  }
  double median_step_s() const { return median(steps()); }
  double min_step_s() const {
    const std::vector<double> all = steps();
    return *std::min_element(all.begin(), all.end());
  }
  double max_step_s() const {
    const std::vector<double> all = steps();
    return *std::max_element(all.begin(), all.end());
  }
  // (max − min) / median of the repeats, in %.
  double spread_percent() const { return 100.0 * (max_step_s() - min_step_s()) / median_step_s(); }
  double step_error_percent() const { return sim::error_percent(predicted_step_s, median_step_s()); }
  // The prediction lies among the repeats: no error larger than the machine's own scatter.
  bool within_spread() const { return predicted_step_s >= min_step_s() && predicted_step_s <= max_step_s(); }
  double measured_memory_bytes() const { return runs.front().measured_memory_bytes; }  // the same every run
  double memory_error_percent() const { return sim::error_percent(predicted_memory_bytes, measured_memory_bytes()); }
  double dp_wait_s() const {
    std::vector<double> waits;
    for (const FidelityRun& r : runs) waits.push_back(r.measured_dp_wait_s);
    return median(waits);
  }
  double load_slowdown() const {
    std::vector<double> loads;
    for (const FidelityRun& r : runs) loads.push_back(r.load_slowdown);
    return median(loads);
  }
};

// A fixed probe's time now (see executor/profile/probe.hpp): on one rank, or with `ranks` ranks
// running it at once (`loom-exec probe` under mpirun, bound as a run binds them), which loads the
// machine as a plan of that many ranks does and shows what co-scheduling costs at the moment.
double probe_s(const std::filesystem::path& work, int64_t ranks = 1, int threads = 1) {
  static int count = 0;
  const std::string out = (work / fmt::format("probe-{:03}.json", count++)).string();
  std::filesystem::remove(out);  // the child's output is appended to it
  std::vector<std::string> command;
  if (ranks > 1) command = launch_for({"mpirun", ranks, ranks, threads, cores_of_this_host()}).launcher_args;
  command.insert(command.end(), {executor_path(), "probe", "--json", "--threads", std::to_string(threads)});
  const int status = spawn_and_wait(command, out);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw Error("the machine-speed probe failed; see {}", out);
  // Open MPI may add lines of its own: the probe's is the one JSON object.
  const std::string text = core::read_text_file(out);
  const size_t begin = text.find("{\"probe_s\"");
  if (begin == std::string::npos) throw Error("the machine-speed probe printed no result; see {}", out);
  return core::parse_json_text(text.substr(begin, text.find('\n', begin) - begin), out).at("probe_s").get<double>();
}

void run_child(const std::vector<std::string>& command, const std::string& log, const std::string& what) {
  const int status = spawn_and_wait(command, log);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("{} failed; its output is in {}", what, log);
}

// Trains the plan once, then reads back what the run measured: the steady step time, the wait for
// the slowest data rank, and the largest allocator high-water mark of any rank; the prediction
// goes to `row`.
FidelityRun measure(const FidelityCase& c, const core::Plan& plan, const std::string& plan_path,
                    const std::filesystem::path& work, const FidelityOptions& o, FidelityRow& row) {
  const std::string db = (work / "fidelity.db").string();
  // No --threads: `loom run` takes the profile's and binds the ranks by the launch rule, as it does
  // for a user (an explicit thread count here once hid ranks pinned to one core).
  run_child({loom_path(), "run", plan_path, "--db", db, "--steps", std::to_string(o.steps)}, (work / "runs.log").string(),
            fmt::format("the run of '{}'", c.label));
  core::Store store = core::Store::open(db);
  const sim::RunComparison compared = sim::compare_run(store, store.list_runs().back().id, plan.cluster.profile);
  FidelityRun run;
  run.run_id = compared.run_id;
  row.predicted_step_s = compared.rows.front().predicted;
  run.measured_step_s = compared.rows.front().measured.value_or(0.0);  // a run with steps always has its step time
  for (const sim::ComparisonRow& r : compared.rows)
    if (r.quantity == "dp wait (slowest rank)") run.measured_dp_wait_s = r.measured.value_or(0.0);
  for (const sim::RankMemoryComparison& rank : compared.ranks) {
    run.measured_memory_bytes = std::max(run.measured_memory_bytes, rank.measured_peak_bytes);
    row.predicted_memory_bytes = std::max(row.predicted_memory_bytes, rank.predicted_peak_bytes);
  }
  return run;
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

// The mean absolute step-time error of each repeat's runs over the plans.
std::vector<double> per_repeat_mape(const std::vector<FidelityRow>& rows, int repeats) {
  std::vector<double> mapes;
  for (int r = 0; r < repeats; ++r) {
    double sum = 0;
    for (const FidelityRow& row : rows) sum += std::abs(sim::error_percent(row.predicted_step_s, row.runs[size_t(r)].measured_step_s));
    mapes.push_back(rows.empty() ? 0.0 : sum / double(rows.size()));
  }
  return mapes;
}

// `loom bench fidelity --calibrate`: the measured profile fitted to half of the plans (their median
// runs), its error on the other half before and after.
sim::CalibrationResult calibrate_on_half(const core::Profile& profile, const std::vector<FidelityRow>& rows,
                                         const std::string& db) {
  core::Store store = core::Store::open(db);
  std::vector<int64_t> ids;
  for (const FidelityRow& row : rows) {
    // The repeat nearest the median stands for the plan, with the median as its step time.
    const auto nearest = std::min_element(row.runs.begin(), row.runs.end(), [&](const FidelityRun& a, const FidelityRun& b) {
      return std::abs(a.measured_step_s - row.median_step_s()) < std::abs(b.measured_step_s - row.median_step_s());
    });
    ids.push_back(nearest->run_id);
  }
  std::vector<sim::MeasuredRun> runs = sim::measured_runs(store, ids);
  for (size_t i = 0; i < runs.size(); ++i) runs[i].step_time_s = rows[i].median_step_s();
  sim::CalibrationOptions options;
  options.holdout = int64_t(runs.size()) / 2;
  return sim::calibrate(profile, runs, options);
}

}  // namespace

void run_fidelity_benchmark(const FidelityOptions& o) {
  if (o.repeats < 1) throw InvalidInput("--repeats {}: expected 1 or more runs of each plan", o.repeats);
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
  // The load probe: as many ranks as the cores hold, each with the profile's threads, all busy at
  // once (at least 2, so that co-scheduling shows even on one core).
  const int threads = int(profile.device.threads_per_rank);
  const int64_t load_ranks = std::clamp<int64_t>(profile.device.host_cores / threads, 2, std::max<int64_t>(2, o.max_ranks));
  // The machine's speed next to the profile: right after measuring it, or now for a given one.
  const double baseline_probe_s = probe_s(work);
  const double baseline_load_probe_s = probe_s(work, load_ranks, threads);

  // Kernel times at sizes the profile did not measure, right after it (little drift in between).
  const std::string off_grid_path = (work / "off-grid.json").string();
  fmt::print(stderr, "loom: measuring kernels between the grid's points into {}\n", off_grid_path);
  // With the profile's threads: a kernel's time depends on them.
  run_child({loom_path(), "profile", "--off-grid", "--ranks", "2", "--threads",
             std::to_string(profile.device.threads_per_rank), "--out", off_grid_path},
            (work / "off-grid.log").string(), "the off-grid measurement");
  const std::vector<KernelCheck> kernel_checks =
      check_kernels(profile, core::resolve_profile(off_grid_path));

  std::vector<const FidelityCase*> cases;
  std::vector<core::Plan> plans;
  std::vector<std::string> plan_paths;
  for (const FidelityCase& c : fidelity_cases()) {
    core::Plan plan = plan_for(c, o, profile_path);
    if (plan.cluster.world_size() > o.max_ranks) continue;
    plan_paths.push_back((work / fmt::format("plan-{:02}.json", plans.size())).string());
    core::write_output_file(plan_paths.back(), core::to_json(plan).dump(2) + "\n");
    cases.push_back(&c);
    plans.push_back(std::move(plan));
  }
  std::vector<FidelityRow> rows(plans.size());
  // Round-robin: every plan once, then every plan again, so that a slow minute of the machine
  // touches one run of several plans rather than every run of one. A load probe before each run
  // (the one after it is the next run's), a one-rank probe before each round.
  std::vector<double> one_rank_drift, load_drift;
  double load_before_s = 0;
  for (int repeat = 0; repeat < o.repeats; ++repeat) {
    one_rank_drift.push_back(probe_s(work) / baseline_probe_s);
    for (size_t i = 0; i < plans.size(); ++i) {
      if (repeat == 0 && i == 0) load_before_s = probe_s(work, load_ranks, threads);
      fmt::print(stderr, "loom: training '{}' ({} ranks, {} steps), run {} of {}\n", cases[i]->label,
                 plans[i].cluster.world_size(), o.steps, repeat + 1, o.repeats);
      rows[i].label = cases[i]->label;
      rows[i].ranks = plans[i].cluster.world_size();
      FidelityRun run = measure(*cases[i], plans[i], plan_paths[i], work, o, rows[i]);
      const double load_after_s = probe_s(work, load_ranks, threads);
      run.load_slowdown = 0.5 * (load_before_s + load_after_s) / baseline_load_probe_s;
      load_drift.push_back(run.load_slowdown);
      load_before_s = load_after_s;
      rows[i].runs.push_back(run);
    }
  }
  one_rank_drift.push_back(probe_s(work) / baseline_probe_s);
  const double step_mape = mean_absolute(rows, &FidelityRow::step_error_percent);
  const double memory_mape = mean_absolute(rows, &FidelityRow::memory_error_percent);
  const std::vector<double> repeat_mapes = per_repeat_mape(rows, o.repeats);
  const auto [repeat_mape_min, repeat_mape_max] = std::minmax_element(repeat_mapes.begin(), repeat_mapes.end());
  int64_t within_spread = 0;
  for (const FidelityRow& r : rows) within_spread += r.within_spread() ? 1 : 0;
  const auto [load_min, load_max] = std::minmax_element(load_drift.begin(), load_drift.end());
  const auto [one_min, one_max] = std::minmax_element(one_rank_drift.begin(), one_rank_drift.end());
  const std::optional<core::MeasuredLoad>& profile_load = profile.device.measured_load;
  std::optional<sim::CalibrationResult> calibrated;
  // A fit that fails (runs that determine no parameter) loses none of the measurements above.
  if (o.calibrate) try {
      calibrated = calibrate_on_half(profile, rows, (work / "fidelity.db").string());
    } catch (const Error& e) {
      fmt::print(stderr, "loom: warning: --calibrate: {}\n", e.what());
    }

  if (o.format == "json") {
    core::Json out = {{"format", "loom-bench-fidelity"}, {"version", 2},        {"model", o.model},
                      {"profile", profile_path},         {"steps", o.steps},    {"host_cores", profile.device.host_cores},
                      {"repeats", o.repeats},
                      {"step_time_mape_percent", step_mape},
                      {"step_time_mape_per_repeat_percent", repeat_mapes},
                      {"plans_within_spread", within_spread},
                      {"peak_memory_mape_percent", memory_mape},
                      {"load_probe_ranks", load_ranks},
                      {"load_probe_slowdown_min", *load_min},
                      {"load_probe_slowdown_median", median(load_drift)},
                      {"load_probe_slowdown_max", *load_max},
                      {"probe_slowdown_min", *one_min},
                      {"probe_slowdown_max", *one_max}};
    if (profile_load)
      out["profile_measured_load"] = {{"tables_busy_ranks_per_node", profile_load->tables_busy_ranks_per_node},
                                      {"probe_busy_ranks_per_node", profile_load->probe_busy_ranks_per_node},
                                      {"slowdown", profile_load->slowdown}};
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
                              {"measured_step_time_s", r.median_step_s()},
                              {"measured_step_times_s", r.steps()},
                              {"measured_step_time_min_s", r.min_step_s()},
                              {"measured_step_time_max_s", r.max_step_s()},
                              {"measured_spread_percent", r.spread_percent()},
                              {"step_time_error_percent", r.step_error_percent()},
                              {"within_spread", r.within_spread()},
                              {"measured_dp_wait_s", r.dp_wait_s()},
                              {"machine_slowdown", r.load_slowdown()},
                              {"predicted_peak_memory_bytes", r.predicted_memory_bytes},
                              {"measured_peak_memory_bytes", r.measured_memory_bytes()},
                              {"peak_memory_error_percent", r.memory_error_percent()}});
    if (calibrated)
      out["calibration"] = {{"held_out_plans", int64_t(rows.size()) / 2},
                            {"held_out_step_time_mape_before_percent", calibrated->holdout_step_error_before_percent.value_or(0.0)},
                            {"held_out_step_time_mape_after_percent", calibrated->holdout_step_error_after_percent.value_or(0.0)},
                            {"fitted_step_time_mape_before_percent", calibrated->fit_step_error_before_percent},
                            {"fitted_step_time_mape_after_percent", calibrated->fit_step_error_after_percent}};
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
  fmt::print("{} on this machine ({} cores), {} steps per run (the first {} excluded), {} run(s) per plan, fp32; "
             "profile {}{}\n",
             o.model, profile.device.host_cores, o.steps, core::warmup_steps(o.steps), o.repeats, profile_path,
             profile_load ? fmt::format(" (tables timed with {} rank(s) busy; {} ranks busy at once ran {:+.0f} %)",
                                        profile_load->tables_busy_ranks_per_node,
                                        profile_load->probe_busy_ranks_per_node, 100.0 * (profile_load->slowdown - 1.0))
                          : std::string());
  TextTable table({"plan", "ranks", "predicted step", "measured (median)", "spread", "error", "in spread", "dp wait",
                   "machine", "predicted peak", "measured peak", "error"},
                  {1, 2, 3, 4, 5, 7, 8, 9, 10, 11});
  for (const FidelityRow& r : rows)
    table.add_row({r.label, std::to_string(r.ranks), fmt::format("{:.2f} ms", r.predicted_step_s * 1e3),
                   fmt::format("{:.2f} ms", r.median_step_s() * 1e3), fmt::format("{:.0f} %", r.spread_percent()),
                   fmt::format("{:+.1f} %", r.step_error_percent()), r.within_spread() ? "yes" : "no",
                   fmt::format("{:.2f} ms", r.dp_wait_s() * 1e3), fmt::format("{:+.0f} %", 100.0 * (r.load_slowdown() - 1.0)),
                   human_bytes(r.predicted_memory_bytes), human_bytes(r.measured_memory_bytes()),
                   fmt::format("{:+.1f} %", r.memory_error_percent())});
  fmt::print("{}Mean absolute error of the median over {} plans: step time {:.1f} % (each run alone: {:.1f} to {:.1f} "
             "%; target 5 %), peak memory {:.1f} % (target 3 %); {} of {} predictions within their plan's spread\n"
             "spread: (slowest − fastest) / median of the plan's {} runs; dp wait: measured wait for the slowest data "
             "rank per step (predicted 0: the simulator's ranks are identical)\n"
             "machine: how much slower than next to the profile a probe on {} ranks at once ran around the run "
             "(all runs: {:+.0f} to {:+.0f} %); a one-rank probe drifted {:+.0f} to {:+.0f} %\n",
             table.render(), rows.size(), step_mape, *repeat_mape_min, *repeat_mape_max, memory_mape, within_spread,
             rows.size(), o.repeats, load_ranks, 100.0 * (*load_min - 1.0), 100.0 * (*load_max - 1.0),
             100.0 * (*one_min - 1.0), 100.0 * (*one_max - 1.0));
  if (calibrated)
    fmt::print("Calibrated on {} of the plans (sim::calibrate), held-out {} plans: step time error {:.1f} % before, "
               "{:.1f} % after\n",
               rows.size() - rows.size() / 2, rows.size() / 2,
               calibrated->holdout_step_error_before_percent.value_or(0.0),
               calibrated->holdout_step_error_after_percent.value_or(0.0));
}

}  // namespace loom::cli
