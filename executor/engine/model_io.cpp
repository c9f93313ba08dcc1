#include "executor/engine/model_io.hpp"

#include "core/error.hpp"
#include "core/output_file.hpp"  // check_output_target
#include "core/plan_json.hpp"
#include "executor/checkpoint/manifest.hpp"
#include "executor/checkpoint/safetensors.hpp"
#include "executor/model/gpt_stage.hpp"  // full_model_parameters

#include <cstring>

namespace loom::exec {
namespace {

// An f32 tensor of the kernels' device (optimizer moments) on the host, and back.
std::vector<float> values_of(Kernels& kernels, const Tensor& t) {
  Tensor host({t.numel()}, ElementType::f32, Device::cpu);
  kernels.copy(t, host);
  return std::vector<float>(host.data<float>(), host.data<float>() + host.numel());
}

void copy_into(Kernels& kernels, Tensor& t, const std::vector<float>& values, const std::string& what) {
  if (int64_t(values.size()) != t.numel())
    throw InvalidInput("{}: {} values where {} were expected", what, values.size(), t.numel());
  Tensor host({t.numel()}, ElementType::f32, Device::cpu);
  std::memcpy(host.data<float>(), values.data(), values.size() * sizeof(float));
  kernels.copy(host, t);
}

// The full tensors of this stage's parameters (on tensor rank 0 of data replica 0), gathered
// from the master weights on the kernels' device.
SafeTensorMap gather_stage(Trainer& trainer) {
  ProcessGroups& groups = trainer.groups();
  Communicator& tensor = *groups.tensor;
  SafeTensorMap out;
  for (const Parameter& p : trainer.stage().parameters().all()) {
    Tensor gathered({p.master.numel() * tensor.size()}, ElementType::f32, p.master.device());
    tensor.all_gather(p.master.data<float>(), gathered.data<float>(), size_t(p.master.numel()));
    if (tensor.rank() == 0)
      out[p.name] = f32_tensor(p.full_shape, ParameterStore::unshard(values_of(trainer.kernels(), gathered), p,
                                                                     tensor.size()));
  }
  return out;
}

}  // namespace

namespace {

// Each stage's part of a model being saved, beside the target: a name of the temporary kind
// (core/output_file.hpp), so that it can never be mistaken for, or be, a file of the user's.
std::filesystem::path stage_part_path(const std::filesystem::path& target, int64_t stage) {
  return target.string() + fmt::format(".tmp-stage-{:03d}", stage);
}

}  // namespace

void save_full_model(Trainer& trainer, Communicator& world, const std::filesystem::path& path) {
  trainer.finish_parameter_gathers();
  ProcessGroups& groups = trainer.groups();
  const int64_t stage = groups.coords.pipeline;
  // Refused before any part is written next to it (`loom run` checked it before launching too).
  if (world.rank() == 0) core::check_output_target(path);
  world.barrier();
  const std::filesystem::path part = stage_part_path(path, stage);
  if (groups.coords.data == 0) {
    SafeTensorMap tensors = gather_stage(trainer);
    if (groups.coords.tensor == 0) write_safetensors(part.string(), tensors);
  }
  world.barrier();
  if (world.rank() == 0) {
    SafeTensorMap merged;
    for (int64_t s = 0; s < trainer.plan().parallel.pipeline_parallel; ++s) {
      const std::filesystem::path file = stage_part_path(path, s);
      SafeTensorsFile stage_file = read_safetensors(file.string());
      for (auto& [name, tensor] : stage_file.tensors) merged.emplace(name, std::move(tensor));  // the tied copy once
      std::filesystem::remove(file);
    }
    write_safetensors(path.string(), merged, {{"format", "loom-model"}, {"model", trainer.plan().model.name}});
  }
  world.barrier();
}

namespace {

// A parameter's full tensor from a full model file, checked against what the model needs: the
// name (the tied output layer may be stored as the embedding), the dtype and the shape; a
// vocabulary padded beyond the file's rows gets zero rows (never predicted).
std::vector<float> full_values(const SafeTensorsFile& file, const Parameter& p, const core::ModelSpec& model) {
  std::string name = p.name;
  const std::string embedding = token_embedding_name(model);
  if (!file.contains(name) && name == "lm_head.weight" && file.contains(embedding)) name = embedding;
  if (!file.contains(name))
    throw InvalidInput("'{}' has no tensor {}; expected Hugging Face {} names", file.path, name,
                       architecture_of(model) == Architecture::gpt2 ? "GPT-2" : "Llama");
  std::vector<float> full = file.f32(name);
  const std::vector<int64_t>& shape = file.tensor(name).shape;
  const std::vector<int64_t>& expected = p.full_shape;
  if (p.sharding == Sharding::vocab_rows && shape.size() == 2 && shape[1] == expected[1] && shape[0] < expected[0]) {
    full.resize(size_t(expected[0] * expected[1]), 0.0f);
  } else if (shape != expected) {
    throw InvalidInput("'{}': tensor {} has shape [{}]; the plan's model needs [{}]", file.path, name,
                       fmt::join(shape, ", "), fmt::join(expected, ", "));
  }
  return full;
}

}  // namespace

void load_full_model(Trainer& trainer, const std::filesystem::path& path) {
  const SafeTensorsFile file = read_safetensors(path.string());
  const int64_t t = trainer.groups().tensor->size(), rank = trainer.groups().tensor->rank();
  ParameterStore& parameters = trainer.stage().parameters();
  for (Parameter& p : parameters.all()) parameters.write_values(p, ParameterStore::shard(full_values(file, p, trainer.plan().model), p, rank, t));
}

void check_full_model_file(const std::filesystem::path& path, const core::ModelSpec& model) {
  const SafeTensorsFile file = read_safetensors(path.string());
  for (const Parameter& p : full_model_parameters(model)) full_values(file, p, model);
}

void save_checkpoint(Trainer& trainer, Communicator& world, const std::filesystem::path& dir, int64_t step) {
  trainer.finish_parameter_gathers();
  SafeTensorMap tensors;
  const ParameterStore& parameters = trainer.stage().parameters();
  for (const Parameter& p : parameters.all()) tensors["param/" + p.name] = f32_tensor(p.local_shape, parameters.read_values(p));
  Kernels& kernels = trainer.kernels();
  const Tensor& m = trainer.optimizer().first_moment();
  const Tensor& v = trainer.optimizer().second_moment();
  tensors["optimizer/m"] = f32_tensor({m.numel()}, values_of(kernels, m));
  tensors["optimizer/v"] = f32_tensor({v.numel()}, values_of(kernels, v));
  // How each parameter is sharded, so that `loom checkpoint export` can rebuild full tensors
  // from the shards alone.
  SafeTensorMetadata sharding;
  for (const Parameter& p : trainer.stage().parameters().all())
    sharding["sharding/" + p.name] = fmt::format("{};{}", int(p.sharding), fmt::join(p.full_shape, ","));
  write_rank_shard(dir, step, world.rank(), tensors, sharding);
  world.barrier();
  if (world.rank() == 0) {
    CheckpointManifest manifest;
    manifest.step = step;
    manifest.world_size = world.size();
    manifest.plan = core::to_json(trainer.plan());
    manifest.data_seed = uint64_t(trainer.plan().training.seed);
    manifest.data_next_step = step + 1;
    write_manifest(dir, manifest);
  }
  world.barrier();
}

namespace {

// Compares what the stored plan means, not its text: a plan written before a key existed reads
// with that key's old default, and so still matches the same plan written today.
bool written_for(const core::Json& stored, const core::Plan& plan) {
  try {
    return core::plan_from_json(stored) == plan;
  } catch (const InvalidInput&) {
    return false;
  }
}

}  // namespace

std::optional<Checkpoint> resumable_checkpoint(const std::filesystem::path& dir, const core::Plan& plan,
                                               bool report_skipped) {
  const CheckpointSearch search = latest_complete_checkpoint(dir);
  for (const std::string& why : search.skipped)
    if (report_skipped) fmt::print(stderr, "loom-exec: warning: skipping checkpoint {}\n", why);
  if (!search.latest) return std::nullopt;
  const Checkpoint& checkpoint = *search.latest;
  if (checkpoint.manifest.world_size != plan.cluster.world_size())
    throw InvalidInput("checkpoint {} was written by {} ranks; this run has {}", checkpoint.directory.string(),
                       checkpoint.manifest.world_size, plan.cluster.world_size());
  if (!written_for(checkpoint.manifest.plan, plan))
    throw InvalidInput("checkpoint {} belongs to another plan; resume with the plan it was written for",
                       checkpoint.directory.string());
  return checkpoint;
}

std::optional<int64_t> resume_checkpoint(Trainer& trainer, Communicator& world, const std::filesystem::path& dir) {
  const std::optional<Checkpoint> found = resumable_checkpoint(dir, trainer.plan(), world.rank() == 0);
  if (!found) return std::nullopt;
  const Checkpoint& checkpoint = *found;
  const SafeTensorsFile shard = read_rank_shard(checkpoint, world.rank());
  ParameterStore& parameters = trainer.stage().parameters();
  for (Parameter& p : parameters.all()) parameters.write_values(p, shard.f32("param/" + p.name));
  copy_into(trainer.kernels(), trainer.optimizer().first_moment(), shard.f32("optimizer/m"), "optimizer/m");
  copy_into(trainer.kernels(), trainer.optimizer().second_moment(), shard.f32("optimizer/v"), "optimizer/v");
  return checkpoint.manifest.step;
}

void export_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& out) {
  // Never onto one of the checkpoint's own files (nor any other file under `dir`).
  const std::vector<std::filesystem::path> inputs = {dir};
  core::check_output_target(out, inputs);
  const CheckpointSearch search = latest_complete_checkpoint(dir);
  if (!search.latest) throw InvalidInput("'{}' holds no complete checkpoint", dir.string());
  const Checkpoint& checkpoint = *search.latest;
  core::Plan plan = core::plan_from_json(checkpoint.manifest.plan);
  const core::RankLayout layout = core::RankLayout::of(plan.parallel);
  const int64_t t = plan.parallel.tensor_parallel;
  SafeTensorMap merged;
  for (int64_t stage = 0; stage < plan.parallel.pipeline_parallel; ++stage) {
    std::vector<SafeTensorsFile> shards;
    for (int64_t tp = 0; tp < t; ++tp) shards.push_back(read_rank_shard(checkpoint, layout.rank({tp, 0, stage})));
    for (const auto& [key, value] : shards[0].metadata) {
      if (key.rfind("sharding/", 0) != 0) continue;
      Parameter p;
      p.name = key.substr(9);
      const size_t semicolon = value.find(';');
      p.sharding = Sharding(std::stoi(value.substr(0, semicolon)));
      for (size_t at = semicolon + 1; at < value.size();) {
        const size_t comma = std::min(value.find(',', at), value.size());
        p.full_shape.push_back(std::stoll(value.substr(at, comma - at)));
        at = comma + 1;
      }
      std::vector<float> gathered;
      for (const SafeTensorsFile& shard : shards) {
        const std::vector<float> part = shard.f32("param/" + p.name);
        gathered.insert(gathered.end(), part.begin(), part.end());
      }
      if (p.sharding == Sharding::replicated) gathered.resize(gathered.size() / size_t(t));
      merged.emplace(p.name, f32_tensor(p.full_shape, ParameterStore::unshard(gathered, p, p.sharding == Sharding::replicated ? 1 : t)));
    }
  }
  write_safetensors(out.string(), merged, {{"format", "loom-model"}, {"model", plan.model.name}});
}

}  // namespace loom::exec
