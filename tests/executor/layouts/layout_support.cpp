#include "layout_support.hpp"

#include "core/enums.hpp"
#include "core/json_reader.hpp"  // core::Json
#include "core/plan_json.hpp"
#include "executor/checkpoint/safetensors.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace loom::layout_tests {
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

std::string tail(const std::string& text, size_t chars = 4000) {
  return text.size() <= chars ? text : "…" + text.substr(text.size() - chars);
}

[[noreturn]] void fail(const std::string& what, const ProcessResult& process) {
  throw std::runtime_error(what + "\ncommand: " + process.command +
                           "\nexit status: " + std::to_string(process.exit_code) + "\nstdout:\n" +
                           tail(process.out) + "\nstderr:\n" + tail(process.err));
}

// The JSON lines of a run's stdout (anything else there, e.g. launcher noise, is ignored).
RunOutput parse_run(ProcessResult process, bool require_success) {
  RunOutput run;
  std::istringstream lines(process.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.front() != '{') continue;
    core::Json json;
    try {
      json = core::Json::parse(line);
    } catch (const std::exception& e) {
      process.err += std::string("\n[test] unparsable JSON line: ") + e.what();
      fail("a JSON line of the run does not parse: " + line, process);
    }
    // `loom run --jsonl --db` first names the run it recorded: {"event": "run", "run_id": N}.
    if (json.contains("event")) continue;
    if (!json.contains("step") || !json.contains("loss") || !json["loss"].is_number() ||
        !json.contains("grad_norm") || !json["grad_norm"].is_number())
      fail("a JSON line of the run has no step or no numeric loss or grad_norm: " + line, process);
    run.steps.push_back(json["step"].get<int64_t>());
    run.losses.push_back(json["loss"].get<double>());
    run.grad_norms.push_back(json["grad_norm"].get<double>());
  }
  run.process = std::move(process);
  if (require_success) {
    if (run.process.exit_code != 0) fail("the run failed", run.process);
    if (run.steps.empty()) fail("the run printed no JSON line", run.process);
  }
  return run;
}

std::string format_double(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

}  // namespace

fs::path scratch_dir() {
  static const fs::path dir = [] {
    const fs::path d =
        fs::temp_directory_path() / ("loom_layout_tests_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

fs::path model_json(bool untied_output_layer) {
  static const fs::path tied = [] {
    // The issue's small model: 4 layers, hidden 64, 4 heads, byte vocabulary, sequence 32.
    const fs::path p = scratch_dir() / "model.json";
    std::ofstream(p) << R"({
  "name": "layout-test",
  "num-layers": 4,
  "hidden-size": 64,
  "num-attention-heads": 4,
  "num-query-groups": 4,
  "ffn-hidden-size": 256,
  "padded-vocab-size": 256,
  "seq-length": 32
}
)";
    return p;
  }();
  if (!untied_output_layer) return tied;
  static const fs::path untied = [] {
    const fs::path p = scratch_dir() / "model_untied.json";
    core::Json model = core::Json::parse(slurp(tied));
    model["untie-embeddings-and-output-weights"] = true;
    std::ofstream(p) << model.dump(2) << "\n";
    return p;
  }();
  return untied;
}

fs::path llama_model_json() {
  static const fs::path path = [] {
    const fs::path p = scratch_dir() / "model_llama.json";
    std::ofstream(p) << R"({
  "name": "layout-test-llama",
  "num-layers": 4,
  "hidden-size": 64,
  "num-attention-heads": 4,
  "num-query-groups": 2,
  "ffn-hidden-size": 192,
  "padded-vocab-size": 256,
  "seq-length": 32,
  "swiglu": true,
  "normalization": "RMSNorm",
  "position-embedding-type": "rope",
  "rotary-base": 10000,
  "add-bias-linear": false,
  "untie-embeddings-and-output-weights": true
}
)";
    return p;
  }();
  return path;
}

fs::path six_layer_model_json() {
  static const fs::path path = [] {
    // The small model with 6 layers: room for uneven and interleaved splits over 2 or 3 stages.
    const fs::path p = scratch_dir() / "model_six_layers.json";
    core::Json model = core::Json::parse(slurp(model_json(false)));
    model["name"] = "layout-test-6";
    model["num-layers"] = 6;
    std::ofstream(p) << model.dump(2) << "\n";
    return p;
  }();
  return path;
}

std::string quote(const std::string& word) {
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

ProcessResult run_process(const std::string& command) {
  static int counter = 0;
  const fs::path out = scratch_dir() / ("process_" + std::to_string(counter) + ".out");
  const fs::path err = scratch_dir() / ("process_" + std::to_string(counter) + ".err");
  ++counter;
  ProcessResult result;
  result.command = command;
  const std::string full =
      command + " </dev/null >" + quote(out.string()) + " 2>" + quote(err.string());
  const auto start = std::chrono::steady_clock::now();
  const int status = std::system(full.c_str());
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (status == -1)
    result.exit_code = -1;
  else if (WIFSIGNALED(status))
    result.exit_code = 128 + WTERMSIG(status);
  else
    result.exit_code =
        WEXITSTATUS(status);  // /bin/sh reports a child killed by signal N as 128 + N
  result.out = slurp(out);
  result.err = slurp(err);
  return result;
}

namespace {

// A layout with a layer-split rule: loom init's one-rank plan of the same model and settings, its
// parallel fields then set from the layout and the whole validated by core (a split core refuses
// fails here, as the test's own mistake).
void write_split_plan(const Layout& layout, const fs::path& plan) {
  Layout one_rank = layout;
  one_rank.name += "_one_rank";
  one_rank.ranks = one_rank.tp = one_rank.pp = 1;
  one_rank.schedule = "1f1b";
  one_rank.layers_per_virtual_stage.reset();
  one_rank.sequence_parallel = one_rank.distributed_optimizer = false;
  one_rank.layer_split.clear();
  one_rank.first_stage_layers = one_rank.last_stage_layers = one_rank.virtual_stages_per_rank = std::nullopt;
  one_rank.account_for_embedding = one_rank.account_for_loss = false;
  core::Plan p = core::read_plan_file(make_plan(one_rank).string());
  p.cluster.devices_per_node = layout.ranks;
  core::ParallelPlan& parallel = p.parallel;
  parallel.tensor_parallel = layout.tp;
  parallel.pipeline_parallel = layout.pp;
  parallel.schedule = core::parse_schedule(layout.schedule, "schedule");
  parallel.layers_per_virtual_stage = layout.layers_per_virtual_stage;
  parallel.sequence_parallel = layout.sequence_parallel;
  parallel.distributed_optimizer = layout.distributed_optimizer;
  parallel.pipeline_layer_split = layout.layer_split;
  parallel.first_stage_layers = layout.first_stage_layers;
  parallel.last_stage_layers = layout.last_stage_layers;
  parallel.virtual_stages_per_rank = layout.virtual_stages_per_rank;
  parallel.account_for_embedding = layout.account_for_embedding;
  parallel.account_for_loss = layout.account_for_loss;
  core::derive_data_parallel(p);
  p.validate();
  std::ofstream(plan) << core::to_json(p).dump(2) << "\n";
}

}  // namespace

fs::path make_plan(const Layout& layout) {
  const fs::path plan = scratch_dir() / ("plan_" + layout.name + ".json");
  ProcessResult init;
  if (layout.has_layer_split_rule()) {
    init.command = "(plan written by write_split_plan)";
    init.exit_code = 0;
    write_split_plan(layout, plan);
  } else {
  std::string command = quote(LOOM_BINARY) + " init --model " +
                        quote((layout.model_file ? *layout.model_file
                                             : layout.llama ? llama_model_json()
                                                            : model_json(layout.untied_output_layer))
                                .string()) +
                        " --nodes 1 --devices-per-node " + std::to_string(layout.ranks) + " --tp " +
                        std::to_string(layout.tp) + " --pp " + std::to_string(layout.pp) +
                        " --schedule " + layout.schedule + " --recompute-granularity " +
                        layout.recompute +
                        " --micro-batch-size " + std::to_string(layout.micro_batch_size) +
                        " --global-batch-size 8 --dtype fp32 --train-iters " +
                        std::to_string(layout.train_iters);
  if (layout.layers_per_virtual_stage)
    command += " --num-layers-per-virtual-pipeline-stage " +
               std::to_string(*layout.layers_per_virtual_stage);
  if (layout.sequence_parallel) command += " --sequence-parallel";
  if (layout.distributed_optimizer) command += " --use-distributed-optimizer";
  if (layout.seed) command += " --seed " + std::to_string(*layout.seed);
  command += " --attention-backend " + layout.attention_backend;
  command += " -o " + quote(plan.string());
  init = run_process(command);
  if (init.exit_code != 0) fail("loom init failed for layout " + layout.name, init);
  }

  // The plan must hold the layout asked for: a test that silently ran another layout proves
  // nothing.
  const core::Plan read = core::read_plan_file(plan.string());
  const core::ParallelPlan& p = read.parallel;
  const bool as_asked =
      read.cluster.world_size() == layout.ranks && p.tensor_parallel == layout.tp &&
      p.pipeline_parallel == layout.pp &&
      p.data_parallel == layout.ranks / (layout.tp * layout.pp) &&
      core::to_string(p.schedule) == layout.schedule &&
      core::to_string(p.recompute) == layout.recompute &&
      p.sequence_parallel == layout.sequence_parallel &&
      p.distributed_optimizer == layout.distributed_optimizer &&
      p.layers_per_virtual_stage == std::optional<int64_t>(layout.layers_per_virtual_stage) &&
      (layout.model_file ||
       read.model.untie_embeddings_and_output_weights == layout.untied_output_layer) &&
      core::to_string(p.attention_backend) == layout.attention_backend &&
      read.training.dtype == core::DType::fp32 && read.training.global_batch_size == 8 &&
      read.training.train_iters == layout.train_iters &&
      p.micro_batch_size == layout.micro_batch_size && p.pipeline_layer_split == layout.layer_split &&
      p.first_stage_layers == layout.first_stage_layers && p.last_stage_layers == layout.last_stage_layers &&
      p.virtual_stages_per_rank == layout.virtual_stages_per_rank &&
      p.account_for_embedding == layout.account_for_embedding && p.account_for_loss == layout.account_for_loss;
  if (!as_asked) fail("loom init wrote a plan other than the layout " + layout.name, init);
  return plan;
}

RunOutput run_exec(const fs::path& plan, int ranks, const std::string& extra,
                   bool require_success) {
  const std::string command = quote(MPIEXEC) + " -np " + std::to_string(ranks) +
                              " --oversubscribe " + quote(LOOM_EXEC_BINARY) + " run " +
                              quote(plan.string()) + " --jsonl --threads 1 " + extra;
  return parse_run(run_process(command), require_success);
}

RunOutput run_loom_run(const fs::path& plan, const std::string& extra, bool require_success) {
  const std::string command =
      quote(LOOM_BINARY) + " run " + quote(plan.string()) + " --jsonl --threads 1 " + extra;
  return parse_run(run_process(command), require_success);
}

const Reference& reference(bool llama) {
  auto make = [](bool llama_model) {
    Reference r;
    const Layout layout = llama_model ? Layout("reference_llama", 1).with_llama() : Layout("reference", 1);
    const fs::path plan = make_plan(layout);
    r.model = scratch_dir() / (layout.name + ".safetensors");
    r.run = run_exec(
        plan, 1, "--steps " + std::to_string(kSteps) + " --save-model " + quote(r.model.string()));
    std::vector<int64_t> expected(kSteps);
    for (int i = 0; i < kSteps; ++i) expected[size_t(i)] = i + 1;
    if (r.run.steps != expected)
      fail("the reference run did not print steps 1 to 10 in order", r.run.process);
    if (!fs::exists(r.model)) fail("the reference run wrote no --save-model file", r.run.process);
    return r;
  };
  if (llama) {
    static const Reference llama_ref = make(true);
    return llama_ref;
  }
  static const Reference ref = make(false);
  return ref;
}

const Reference& reference(const fs::path& model_file) {
  static std::map<std::string, Reference> made;
  if (auto found = made.find(model_file.string()); found != made.end()) return found->second;
  Reference r;
  const Layout layout = Layout("reference_" + model_file.stem().string(), 1).with_model_file(model_file);
  const fs::path plan = make_plan(layout);
  r.model = scratch_dir() / (layout.name + ".safetensors");
  r.run = run_exec(plan, 1, "--steps " + std::to_string(kSteps) + " --save-model " + quote(r.model.string()));
  if (r.run.steps.size() != size_t(kSteps)) fail("the reference run did not print 10 steps", r.run.process);
  return made.emplace(model_file.string(), std::move(r)).first->second;
}

std::vector<std::string> loss_mismatches(const std::vector<double>& reference,
                                         const std::vector<double>& other,
                                         double relative_tolerance, const std::string& what,
                                         int64_t first_step) {
  std::vector<std::string> problems;
  if (reference.size() != other.size())
    problems.push_back("the runs have " + std::to_string(reference.size()) + " and " +
                       std::to_string(other.size()) + " steps");
  for (size_t i = 0; i < std::min(reference.size(), other.size()); ++i) {
    const double difference = std::abs(other[i] - reference[i]);
    const bool ok = relative_tolerance == 0
                        ? other[i] == reference[i]
                        : difference <= relative_tolerance * std::abs(reference[i]);
    if (!ok)
      problems.push_back("step " + std::to_string(first_step + int64_t(i)) + ": " + what + " " +
                         format_double(other[i]) + ", reference " + format_double(reference[i]) +
                         " (relative difference " +
                         format_double(difference / std::abs(reference[i])) + ")");
  }
  return problems;
}

std::vector<std::string> parameter_mismatches(const fs::path& reference_file,
                                              const fs::path& other_file, double tolerance) {
  return parameter_mismatches(reference_file, other_file, tolerance, OutlierAllowance{});
}

std::vector<std::string> parameter_mismatches(const fs::path& reference_file, const fs::path& other_file,
                                              double tolerance, OutlierAllowance allowance) {
  std::vector<std::string> problems;
  size_t outliers = 0;  // elements beyond `tolerance` but within the allowance's, over the whole model
  std::vector<std::string> outlier_lines;
  const exec::SafeTensorsFile ref = exec::read_safetensors(reference_file.string());
  const exec::SafeTensorsFile other = exec::read_safetensors(other_file.string());
  for (const auto& [name, tensor] : other.tensors)
    if (!ref.contains(name)) problems.push_back(name + ": not in the reference model");
  for (const auto& [name, tensor] : ref.tensors) {
    if (!other.contains(name)) {
      problems.push_back(name + ": missing");
      continue;
    }
    const exec::SafeTensor& mine = other.tensor(name);
    if (mine.dtype != tensor.dtype || mine.shape != tensor.shape) {
      problems.push_back(name + ": dtype or shape differs from the reference's");
      continue;
    }
    if (tolerance == 0) {
      if (mine.bytes != tensor.bytes) {
        const std::vector<float> a = ref.f32(name), b = other.f32(name);
        size_t differing = 0, first = a.size();
        for (size_t i = 0; i < a.size(); ++i)
          if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && differing++ == 0) first = i;
        problems.push_back(name + ": " + std::to_string(differing) +
                           " element(s) not bit-identical, first [" + std::to_string(first) + "] " +
                           format_double(b[first]) + " vs reference " + format_double(a[first]));
      }
      continue;
    }
    const std::vector<float> a = ref.f32(name), b = other.f32(name);
    double worst = 0;  // the largest |b - a| / (tolerance · max(1, |a|))
    size_t worst_at = 0, violations = 0, tensor_outliers = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double difference = std::abs(double(b[i]) - double(a[i])), scale = std::max(1.0, std::abs(double(a[i])));
      const double ratio = difference / (tolerance * scale);
      if (!(ratio <= 1)) {  // NaN counts as a violation
        if (difference <= allowance.outlier_tolerance * scale)
          ++tensor_outliers;
        else
          ++violations;
      }
      if (!(ratio <= worst)) worst = ratio, worst_at = i;
    }
    const std::string where = "worst [" + std::to_string(worst_at) + "] " + format_double(b[worst_at]) +
                              " vs reference " + format_double(a[worst_at]);
    if (violations > 0)
      problems.push_back(name + ": " + std::to_string(violations + tensor_outliers) + " of " +
                         std::to_string(a.size()) + " element(s) beyond tolerance; " + where);
    else if (tensor_outliers > 0)
      outlier_lines.push_back(name + ": " + std::to_string(tensor_outliers) + " of " + std::to_string(a.size()) +
                              " element(s) beyond tolerance, within the outlier allowance; " + where);
    outliers += tensor_outliers;
  }
  if (outliers > allowance.outliers) problems.insert(problems.end(), outlier_lines.begin(), outlier_lines.end());
  return problems;
}

std::string join_lines(const std::vector<std::string>& lines, size_t at_most) {
  std::string text;
  for (size_t i = 0; i < std::min(at_most, lines.size()); ++i) text += "\n  " + lines[i];
  if (lines.size() > at_most)
    text += "\n  … and " + std::to_string(lines.size() - at_most) + " more";
  return text;
}

}  // namespace loom::layout_tests
