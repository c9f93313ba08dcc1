#include "executor/commands/run_command.hpp"

#include "core/error.hpp"
#include "core/output_file.hpp"  // finish_standard_output
#include "core/plan_json.hpp"
#include "core/store.hpp"
#include "core/store_rows.hpp"
#include "core/train_spec.hpp"
#include "executor/comm/communicator.hpp"
#include "executor/comm/world.hpp"  // make_world_communicator, node_local_rank
#include "executor/model/precision.hpp"
#include "executor/data/token_source.hpp"
#include "executor/engine/model_io.hpp"
#include "executor/engine/trainer.hpp"
#include "executor/checkpoint/manifest.hpp"  // prune_checkpoints
#include "executor/kernels/kernels.hpp"
#include "executor/commands/preflight.hpp"  // check_run_options

#include <fmt/format.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>

namespace loom::exec {
namespace {

// CPUs the launcher lets this rank run on: its threads are slower than one when they are more.
int cpus_allowed() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return std::max(1, int(std::thread::hardware_concurrency()));
  return std::max(1, CPU_COUNT(&allowed));
}

// Only for loom-exec started without --threads (`loom run` decides them by its launch rule): the
// node's CPUs shared out among its ranks, and never more than this rank is allowed on.
int default_threads(int ranks_on_node) {
  const int cpus = std::max(1, int(std::thread::hardware_concurrency()));
  return std::max(1, std::min(cpus_allowed(), cpus / std::max(1, ranks_on_node)));
}

int local_ranks() {
  // Open MPI and Slurm tell each rank how many share its node.
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE", "MPI_LOCALNRANKS"})
    if (const char* value = std::getenv(name)) return std::max(1, std::atoi(value));
  return 1;
}

std::string host_name() {
  char buffer[256] = {};
  gethostname(buffer, sizeof(buffer) - 1);
  return buffer;
}

// Rank 0's record of the run in the store.
class RunRecord {
 public:
  RunRecord(const RunOptions& options, const core::Plan& plan) {
    // (`loom run` creates the row itself and passes --run-id; this is loom-exec started alone.)
    if (options.db_path.empty()) return;
    store_.emplace(core::Store::open(options.db_path));
    if (options.run_id) {
      run_id_ = *options.run_id;
      store_->run(run_id_);  // must exist
      return;
    }
    core::RunRow run;
    run.plan_id = store_->insert_plan(core::plan_row(plan, options.plan_path));
    run.backend = std::string(to_string(options.backend));
    run.profile_name = plan.cluster.profile;
    run.host = host_name();
    run_id_ = store_->begin_run(run);
  }
  void step(const StepResult& r) {
    if (store_) store_->append_steps(run_id_, {{r.step, r.loss, r.step_time_s, r.tokens_per_s, r.learning_rate, r.grad_norm}});
  }
  void finish(core::RunStatus status, const std::string& reason, const std::vector<core::RankStatRow>& ranks) {
    if (!store_) return;
    if (!ranks.empty()) store_->put_rank_stats(run_id_, ranks);
    store_->finish_run(run_id_, status, reason);
  }
  bool active() const { return store_.has_value(); }

 private:
  std::optional<core::Store> store_;
  int64_t run_id_ = 0;
};

// Every rank's peak memory and its time per category summed over the measured (post-warm-up)
// steps, gathered to all (rank 0 stores them). Gathered as a sum of doubles in which each rank
// fills only its own row: exact for byte counts below 2^53 (a float all-gather lost every byte
// count above 16 MiB to rounding) and for the times at full precision.
std::vector<core::RankStatRow> gather_rank_stats(Communicator& world, Trainer& trainer, const ProcessGroups& groups,
                                                 Device device, int64_t measured_steps, int64_t warmup_steps) {
  constexpr size_t kFields = 4 + kCategoryCount;
  std::vector<double> all(kFields * size_t(world.size()), 0.0);
  double* mine = all.data() + size_t(world.rank()) * kFields;
  mine[0] = double(memory_stats(device).peak_bytes);
  mine[1] = double(groups.coords.tensor);
  mine[2] = double(groups.coords.data);
  mine[3] = double(groups.coords.pipeline);
  for (size_t c = 0; c < kCategoryCount; ++c) mine[4 + c] = trainer.timers()[Category(c)];
  world.all_reduce_sum(all.data(), all.size());
  std::vector<core::RankStatRow> rows;
  for (int r = 0; r < world.size(); ++r) {
    const double* f = all.data() + size_t(r) * kFields;
    core::Json times = core::Json::object();
    for (size_t c = 0; c < kCategoryCount; ++c) times[std::string(to_string(Category(c))) + "_s"] = f[4 + c];
    core::Json stats = {{"tensor_rank", int(f[1])},         {"data_rank", int(f[2])},
                        {"pipeline_rank", int(f[3])},        {"time_by_category", times},
                        {"measured_steps", measured_steps}, {"warmup_steps", warmup_steps}};
    rows.push_back({r, int64_t(f[0]), stats.dump()});
  }
  return rows;
}

// What the run computes in, said once: a bf16 plan runs in fp32 on the CPU.
std::string precision_note(const core::Plan& plan, const Kernels& kernels) {
  const ElementType compute = compute_type_for(plan, kernels);
  if (compute == ElementType::bf16) return "bf16 mixed precision (fp32 master weights, gradients and Adam state)";
  if (plan.training.dtype == core::DType::fp32) return "fp32";
  return fmt::format("the {} backend computes in fp32 (the plan says {})",
                     kernels.device() == Device::cpu ? "CPU" : "CUDA", core::to_string(plan.training.dtype));
}

}  // namespace

int run_training(const RunOptions& options) {
  check_run_options(options);
  const core::Plan plan = core::read_plan_file(options.plan_path);
  const int threads = options.threads > 0 ? options.threads : default_threads(local_ranks());
  // The kernels first: the CUDA backend picks this rank's device, which NCCL then uses.
  std::unique_ptr<Kernels> kernels = make_kernels(options.backend, threads, node_local_rank());
  std::unique_ptr<Communicator> world = make_world_communicator(options.backend);
  if (world->size() != plan.cluster.world_size())
    throw InvalidInput("the plan needs {} ranks (dp {} × tp {} × pp {}) but {} were started", plan.cluster.world_size(),
                       plan.parallel.data_parallel, plan.parallel.tensor_parallel, plan.parallel.pipeline_parallel,
                       world->size());
  const bool leader = world->rank() == 0;
  ProcessGroups groups = make_process_groups(*world, core::RankLayout::of(plan.parallel));
  const std::string data = options.data_path.empty() ? default_corpus_path() : options.data_path;
  const std::unique_ptr<TokenSource> tokens = open_tokens(data, plan.padded_vocab_size());
  const int64_t steps = options.steps.value_or(plan.training.train_iters);

  std::optional<RunRecord> record;
  if (leader) record.emplace(options, plan);
  Trainer trainer(plan, groups, *world, *kernels, *tokens);
  trainer.timers().set_separates_waits(options.separate_waits);
  if (!options.init_from_path.empty()) load_full_model(trainer, options.init_from_path);
  int64_t first_step = 1;
  if (options.resume)
    if (const std::optional<ResumedCheckpoint> resumed = resume_checkpoint(trainer, *world, options.checkpoint_dir)) {
      first_step = resumed->step + 1;
      if (leader && !options.jsonl)
        fmt::print("loom-exec: resuming after step {}{}\n", resumed->step,
                   resumed->resharded
                       ? fmt::format(" (resharded from the {} rank(s) of the plan that wrote the checkpoint)",
                                     resumed->world_size)
                       : std::string());
    }
  // A launcher of the user's own may have pinned the rank to fewer CPUs than its threads.
  if (leader && options.backend == Backend::cpu && threads > cpus_allowed())
    fmt::print(stderr, "loom-exec: warning: {} threads on the {} CPU(s) rank 0 is allowed on: they will share cores "
               "and slow each other (bind each rank to as many cores as threads, or pass fewer --threads)\n",
               threads, cpus_allowed());
  if (leader && !options.jsonl)
    fmt::print("loom-exec: {} on {} rank(s) (tp {} pp {} dp {}), {}, data {}; {}\n", plan.model.name, world->size(),
               plan.parallel.tensor_parallel, plan.parallel.pipeline_parallel, plan.parallel.data_parallel,
               options.backend == Backend::cpu
                   ? fmt::format("CPU backend, {} thread(s) each, rank 0 allowed on {} CPU(s)", threads, cpus_allowed())
                   : std::string("CUDA backend, one device per rank"),
               tokens->description(), precision_note(plan, *kernels));
  // The first steps (allocations, caches) are warm-up: time per category counts from after them.
  const int64_t trained = std::max<int64_t>(0, steps - first_step + 1);
  const int64_t warmup_steps = core::warmup_steps(trained);
  // Peak memory is that of training, what the simulator predicts: temporaries of initialization
  // and of loading weights or a checkpoint are not counted.
  reset_peak_memory(kernels->device());
  try {
    for (int64_t step = first_step; step <= steps; ++step) {
      const StepResult r = trainer.train_step(step);
      if (step == first_step + warmup_steps - 1) trainer.timers().reset();
      const bool checkpoint_now =
          !options.checkpoint_dir.empty() &&
          (step == steps || (options.checkpoint_every > 0 && step % options.checkpoint_every == 0));
      // The step is recorded before its checkpoint is written: a run stopped in between then has
      // every step its newest checkpoint holds (a resume records the steps after it again).
      if (leader) record->step(r);
      if (checkpoint_now) {
        save_checkpoint(trainer, *world, options.checkpoint_dir, step);
        if (leader && options.keep_checkpoints > 0) prune_checkpoints(options.checkpoint_dir, options.keep_checkpoints);
      }
      if (!leader) continue;
      if (options.jsonl)
        std::cout << core::Json{{"step", r.step}, {"loss", r.loss}, {"step_time_s", r.step_time_s},
                                {"tokens_per_s", r.tokens_per_s}, {"grad_norm", r.grad_norm},
                                {"learning_rate", r.learning_rate}}.dump()
                  << std::endl;
      else
        fmt::print("step {:4d}/{}  loss {:.4f}  {:8.1f} ms/step  {:10.0f} tokens/s  grad norm {:.3f}\n", r.step, steps,
                   r.loss, r.step_time_s * 1e3, r.tokens_per_s, r.grad_norm);
      // Each step reaches its reader now (the GUI follows the lines as they come), and a reader
      // that cannot take it (a full disk behind --jsonl > file) fails the run instead of being
      // ignored.
      core::finish_standard_output();
    }
  } catch (const Error& e) {
    if (leader && !options.elastic) record->finish(core::RunStatus::failed, e.what(), {});
    throw;
  }
  trainer.finish_parameter_gathers();  // overlap-param-gather leaves the last step's gathers pending
  if (!options.save_model_path.empty()) save_full_model(trainer, *world, options.save_model_path);
  const std::vector<core::RankStatRow> stats =
      gather_rank_stats(*world, trainer, groups, kernels->device(), trained - warmup_steps, warmup_steps);
  if (leader) record->finish(core::RunStatus::completed, "", stats);
  return 0;
}

}  // namespace loom::exec
