// `loom-exec`: the executor, one process per rank under mpirun or srun.

#include "core/error.hpp"
#include "executor/comm/communicator.hpp"
#include "executor/commands/bench_command.hpp"
#include "executor/process_heap.hpp"
#include "executor/profile/probe.hpp"
#include "executor/commands/profile_command.hpp"
#include "executor/engine/model_io.hpp"
#include "executor/commands/preflight.hpp"
#include "executor/commands/run_command.hpp"

#include <CLI/CLI.hpp>
#include "executor/comm/mpi_session.hpp"

#include <fmt/format.h>

#include <iostream>

namespace {

// One insertion of one whole line: the ranks share standard error, and a line written in pieces
// interleaves with the other ranks' lines.
void report_rank_error(int rank, const char* what) {
  std::cerr << fmt::format("loom-exec: error: rank {}: {}\n", rank, what) << std::flush;
}

}  // namespace

int main(int argc, char** argv) {
  loom::exec::keep_heap_mapped();
  CLI::App app("loom-exec: runs one rank of a Loom plan (started by `loom run` under mpirun or srun)", "loom-exec");
  app.require_subcommand(1);
  loom::exec::RunOptions options;
  // `check` takes the very arguments of `run`, so that `loom run` can check them first as given.
  auto add_run_options = [&options](CLI::App* sub) {
    sub->add_option("plan", options.plan_path, "Plan JSON file")->required();
    sub->add_option("--steps", options.steps, "Steps to train [default: the plan's train-iters]");
    sub->add_option("--data", options.data_path, "Token shard (.bin, llm.c format) or text file [default: built-in corpus]");
    sub->add_option("--threads", options.threads, "Threads per rank [default: cores / ranks on the node]");
    sub->add_flag("--jsonl", options.jsonl, "One JSON line per step on standard output");
    sub->add_option("--db", options.db_path, "SQLite store where rank 0 records the run");
    sub->add_option("--run-id", options.run_id, "Record into this existing run (created by `loom run`)");
    sub->add_option("--save-model", options.save_model_path, "Write the whole model at the end (safetensors, Hugging Face GPT-2 or Llama names)");
    sub->add_option("--init-from", options.init_from_path, "Start from these weights (safetensors, Hugging Face GPT-2 or Llama names)");
    sub->add_option("--checkpoint-dir", options.checkpoint_dir, "Write per-rank checkpoints here");
    sub->add_option("--checkpoint-every", options.checkpoint_every, "Checkpoint every N steps (and always at the end)");
    sub->add_option("--keep-checkpoints", options.keep_checkpoints,
                    "Keep only the newest N complete checkpoints (0: keep all)");
    sub->add_flag("--resume", options.resume, "Continue from the newest complete checkpoint in --checkpoint-dir");
    sub->add_flag("--elastic", options.elastic,
                  "Leave a failure for `loom run --elastic` to record: it ends the attempt, not the run");
    sub->add_flag("--no-wait-barriers{false}", options.separate_waits,
                  "Leave out the barriers before data- and tensor-parallel collectives that time the wait for the "
                  "slowest rank (dp_wait, tp_wait) apart from the transfer (dp_comm, tp_comm)");
    sub->add_option_function<std::string>(
           "--backend", [&options](const std::string& text) { options.backend = loom::exec::parse_backend(text); },
           "cpu (Eigen + MPI) or cuda (CUDA + cuBLASLt + NCCL, one GPU per rank) [default: cpu]")
        ->check(CLI::IsMember({"cpu", "cuda"}));
  };
  CLI::App* run = app.add_subcommand("run", "Train the plan on this rank");
  add_run_options(run);
  CLI::App* check = app.add_subcommand("check", "Check a run's inputs, in one process without MPI (`loom run` does first)");
  add_run_options(check);
  loom::exec::BenchOptions bench_options;
  CLI::App* bench = app.add_subcommand("bench", "Measure single-rank training speed against the GEMM rate (and MFU)");
  bench->add_option("--threads", bench_options.threads, "Threads (cpu)")->capture_default_str();
  bench->add_option("--seconds", bench_options.seconds, "Seconds per measurement")->capture_default_str();
  bench->add_flag("--json", bench_options.json, "JSON output");
  bench->add_option_function<std::string>(
      "--backend",
      [&bench_options](const std::string& text) { bench_options.backend = loom::exec::parse_backend(text); },
      "cpu or cuda [default: cpu]")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  bench->add_option("--model", bench_options.model, "bench-gpt-4x256, bench-llama-4x256 (its Llama twin of equal FLOPs), gpt2-124m or gpt2-350m")->capture_default_str();
  bench->add_option("--seq", bench_options.seq, "Sequence length in tokens, 1 to 65536 [default: 256; GPT-2: 1024]");
  bench->add_option("--micro-batch", bench_options.micro_batch, "Sequences per step [default: 8]");
  bench->add_option("--precision", bench_options.precision,
                    "fp32 or bf16 [default: bf16 for GPT-2 on cuda, else fp32; the CPU computes in fp32]");
  bench->add_option("--profile", bench_options.profile,
                    "Profile whose peak FLOP/s the MFU is measured against [default: h100-80gb-dgx on cuda; none "
                    "on cpu]");
  loom::exec::ProfileOptions profile_options;
  CLI::App* profiler = app.add_subcommand("profile", "Measure this machine's kernels and collectives into a profile");
  profiler->add_option("--out", profile_options.out_path, "Profile JSON to write")->required();
  profiler->add_option("--name", profile_options.name, "Profile name [default: <backend>-<host>]");
  profiler->add_flag("--quick", profile_options.quick, "A reduced grid, under a minute");
  profiler->add_flag("--off-grid", profile_options.off_grid,
                     "Sizes between the quick grid's points (to check how well a profile interpolates; cpu)");
  profiler->add_option("--threads", profile_options.threads, "Threads per rank (cpu)")->capture_default_str();
  profiler->add_option_function<std::string>(
      "--backend",
      [&profile_options](const std::string& text) { profile_options.backend = loom::exec::parse_backend(text); },
      "cpu (Eigen kernels, MPI) or cuda (CUDA kernels in bf16, NCCL; one GPU per rank) [default: cpu]")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  bool probe_json = false;
  CLI::App* probe = app.add_subcommand("probe", "Time a short fixed workload: how fast this machine runs now");
  probe->add_flag("--json", probe_json, "JSON output");
  int probe_threads = 1;
  probe->add_option("--threads", probe_threads, "Threads per rank")->check(CLI::Range(1, 1024))->capture_default_str();
  std::string checkpoint_dir, export_path;
  CLI::App* exporter = app.add_subcommand("export-checkpoint", "Write a checkpoint as one full model (no MPI needed)");
  exporter->add_option("dir", checkpoint_dir, "Checkpoint directory")->required();
  exporter->add_option("--out", export_path, "Output safetensors file")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line and status 2, as `loom` answers bad arguments: CLI11's own text and codes (106 for
    // a bad value) mean nothing to the `loom run` that started this process.
    std::cerr << fmt::format("loom-exec: error: {} (see 'loom-exec --help')\n", e.what()) << std::flush;
    return 2;
  }
  if (check->parsed()) {
    try {
      loom::exec::check_run_inputs(options);
      return 0;
    } catch (const loom::Error& e) {
      std::cerr << "loom-exec: error: " << e.what() << std::endl;
      return e.exit_code();
    }
  }
  // Bad benchmark or profile options are one line before MPI starts, as `check` does for a run.
  if (bench->parsed() || profiler->parsed()) {
    try {
      if (bench->parsed()) loom::exec::check_bench_options(bench_options);
      else loom::exec::check_profile_options(profile_options);
    } catch (const loom::Error& e) {
      std::cerr << "loom-exec: error: " << e.what() << std::endl;
      return e.exit_code();
    }
  }
  if (exporter->parsed()) {
    try {
      loom::exec::export_checkpoint(checkpoint_dir, export_path);
      return 0;
    } catch (const loom::Error& e) {
      std::cerr << "loom-exec: error: " << e.what() << std::endl;
      return e.exit_code();
    }
  }
  loom::exec::MpiSession session(&argc, &argv);
  const int rank = session.world_rank(), size = session.world_size();
  try {
    if (profiler->parsed()) return loom::exec::run_profile(profile_options);
    if (probe->parsed()) return loom::exec::profile::run_probe(probe_json, probe_threads);
    return bench->parsed() ? loom::exec::run_benchmark(bench_options) : loom::exec::run_training(options);
  } catch (const loom::Error& e) {
    report_rank_error(rank, e.what());
    // A rank that fails alone would leave the others waiting in a collective: end them all.
    if (size > 1) session.abort_job(e.exit_code());
    return e.exit_code();
  } catch (const std::exception& e) {
    report_rank_error(rank, e.what());
    if (size > 1) session.abort_job(1);
    return 1;
  }
}
