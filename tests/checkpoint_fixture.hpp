#pragma once
// Checkpoint directories for the tests of `loom replan`, which reads only manifests and checks that
// the shards they list exist: each step gets a manifest as the executor writes it
// (executor/checkpoint/manifest.hpp) and one small placeholder file per rank.

#include "core/model_presets.hpp"
#include "core/plan.hpp"
#include "core/plan_json.hpp"

#include <fmt/format.h>

#include <unistd.h>  // getpid

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace loom::testing {

// loom-tiny on 4 devices of one node of the built-in CPU profile, tp1 pp2 dp2, global batch 8,
// with non-default training settings that a re-plan must keep.
inline core::Plan loom_tiny_four_device_plan() {
  core::Plan plan;
  plan.model = core::resolve_model("loom-tiny");
  plan.cluster.nodes = 1;
  plan.cluster.devices_per_node = 4;
  plan.cluster.profile = "cpu-epyc-2core-vm";
  plan.parallel.pipeline_parallel = 2;
  plan.parallel.data_parallel = 2;
  plan.parallel.micro_batch_size = 2;
  plan.training.global_batch_size = 8;
  plan.training.dtype = core::DType::fp32;
  plan.training.seed = 4321;
  plan.training.train_iters = 40;
  plan.training.lr = 3e-4;
  plan.training.lr_warmup_iters = 5;
  plan.validate();
  return plan;
}

class CheckpointFixture {
 public:
  explicit CheckpointFixture(const std::string& name)
      : dir_(std::filesystem::temp_directory_path() /
             fmt::format("loom_replan_{}_{}", ::getpid(), name)) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~CheckpointFixture() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  CheckpointFixture(const CheckpointFixture&) = delete;
  CheckpointFixture& operator=(const CheckpointFixture&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path step_dir(int64_t step) const {
    return dir_ / fmt::format("step-{:06}", step);
  }
  std::filesystem::path manifest(int64_t step) const { return step_dir(step) / "manifest.json"; }

  // A complete step written by `plan`, one shard per rank.
  void add_step(int64_t step, const core::Plan& plan,
                const std::string& format = "loom-checkpoint") {
    const int64_t world = plan.cluster.world_size();
    std::vector<std::string> shards;
    std::filesystem::create_directories(step_dir(step));
    for (int64_t rank = 0; rank < world; ++rank) {
      shards.push_back(fmt::format("rank-{:05}.safetensors", rank));
      std::ofstream(step_dir(step) / shards.back()) << "shard";
    }
    const core::Json manifest = {{"format", format},
                                 {"version", 1},
                                 {"step", step},
                                 {"world_size", world},
                                 {"plan", core::to_json(plan)},
                                 {"data", {{"seed", plan.training.seed}, {"next_step", step + 1}}},
                                 {"rng", core::Json::object()},
                                 {"shards", shards},
                                 {"created_at", "2026-01-01T00:00:00.000Z"}};
    write_manifest_text(step, manifest.dump(2));
  }
  // A manifest cut short, as a copy interrupted midway would leave it.
  void tear_manifest(int64_t step) {
    const std::string whole = read(manifest(step));
    write_manifest_text(step, whole.substr(0, whole.size() / 2));
  }
  void write_manifest_text(int64_t step, const std::string& text) {
    std::filesystem::create_directories(step_dir(step));
    std::ofstream(manifest(step), std::ios::trunc) << text;
  }
  static std::string read(const std::filesystem::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace loom::testing
