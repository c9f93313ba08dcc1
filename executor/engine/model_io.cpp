#include "executor/engine/model_io.hpp"

#include "core/error.hpp"
#include "core/output_file.hpp"  // check_output_target
#include "core/plan_json.hpp"
#include "executor/checkpoint/manifest.hpp"
#include "executor/checkpoint/reshard.hpp"  // CheckpointResharder
#include "executor/checkpoint/safetensors.hpp"
#include "executor/model/gpt_stage.hpp"  // full_model_parameters

#include <algorithm>  // std::reverse, std::fill
#include <cstdlib>    // std::getenv
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

namespace {

// The model's effective vocabulary (the tokenizer's size when given, else the rows it pins or
// pads to), which every plan of one model shares whatever its tp.
int64_t real_vocabulary(const core::Plan& plan) {
  return plan.model.vocab_size.value_or(plan.padded_vocab_size());
}

// Why a checkpoint written under `stored` cannot be resumed under `plan`, in one line, or empty.
// The model must be the same (its name and how its vocabulary is padded aside); the global batch
// and the seed too, since the data position carried over is (seed, next step) only.
std::string resharding_refusal(const core::Plan& stored, const core::Plan& plan, const std::string& where) {
  core::Json old_model = core::to_json(stored.model), new_model = core::to_json(plan.model);
  for (const char* derived : {"name", "padded-vocab-size", "make-vocab-size-divisible-by", "vocab-size"}) {
    old_model.erase(derived);
    new_model.erase(derived);
  }
  std::vector<std::string> keys;
  for (const auto& [key, value] : old_model.items()) keys.push_back(key);
  for (const auto& [key, value] : new_model.items())
    if (!old_model.contains(key)) keys.push_back(key);
  for (const std::string& key : keys) {
    const core::Json a = old_model.value(key, core::Json()), b = new_model.value(key, core::Json());
    if (a != b)
      return fmt::format("checkpoint {} was written for {}={}, this plan has {}={}", where, key, a.dump(), key, b.dump());
  }
  if (real_vocabulary(stored) != real_vocabulary(plan))
    return fmt::format("checkpoint {} was written for vocab-size={}, this plan has vocab-size={}", where,
                       real_vocabulary(stored), real_vocabulary(plan));
  if (stored.training.global_batch_size != plan.training.global_batch_size)
    return fmt::format("checkpoint {} was written with global-batch-size={}, this plan has global-batch-size={}; the "
                       "data position (seed, next step) carries over only with the same global batch",
                       where, stored.training.global_batch_size, plan.training.global_batch_size);
  if (stored.training.seed != plan.training.seed)
    return fmt::format("checkpoint {} was written with seed={}, this plan has seed={}; the data position (seed, next "
                       "step) carries over only with the same seed",
                       where, stored.training.seed, plan.training.seed);
  return {};
}

}  // namespace

std::optional<Checkpoint> resumable_checkpoint(const std::filesystem::path& dir, const core::Plan& plan,
                                               bool report_skipped) {
  const CheckpointSearch search = latest_complete_checkpoint(dir);
  for (const std::string& why : search.skipped)
    if (report_skipped) fmt::print(stderr, "loom-exec: warning: skipping checkpoint {}\n", why);
  // Without any complete checkpoint the run would start afresh and write over the damaged one.
  if (!search.latest && !search.damaged.empty())
    throw InvalidInput("cannot resume from {}: it holds no complete checkpoint ({})", dir.string(), search.damaged);
  if (!search.latest) return std::nullopt;
  const Checkpoint& checkpoint = *search.latest;
  if (checkpoint.manifest.world_size == plan.cluster.world_size() && written_for(checkpoint.manifest.plan, plan))
    return checkpoint;
  core::Plan stored;
  try {
    stored = core::plan_from_json(checkpoint.manifest.plan);
  } catch (const InvalidInput& error) {
    throw InvalidInput("checkpoint {} records a plan this Loom cannot read: {}", checkpoint.directory.string(),
                       error.what());
  }
  if (stored.cluster.world_size() != checkpoint.manifest.world_size)
    throw InvalidInput("checkpoint {} lists {} shards for a plan of {} ranks", checkpoint.directory.string(),
                       checkpoint.manifest.world_size, stored.cluster.world_size());
  const std::string refusal = resharding_refusal(stored, plan, checkpoint.directory.string());
  if (!refusal.empty()) throw InvalidInput("{}", refusal);
  return checkpoint;
}

namespace {

// Test-only fault injection for the negative controls of the resharding tests
// (tests/executor/layouts/reshard_test.cpp): LOOM_TEST_ONLY_RESHARD_FAULT=reverse:NAME reverses the
// order of parameter NAME's elements, =drop-v loads Adam's v as zeros. Both must make a resumed
// run's losses differ from the uninterrupted run's.
struct ReshardFault {
  std::string reversed_parameter;
  bool drop_second_moment = false;
};

ReshardFault reshard_fault() {
  ReshardFault fault;
  const char* value = std::getenv("LOOM_TEST_ONLY_RESHARD_FAULT");
  if (!value) return fault;
  const std::string text = value;
  if (text == "drop-v")
    fault.drop_second_moment = true;
  else if (text.rfind("reverse:", 0) == 0)
    fault.reversed_parameter = text.substr(8);
  return fault;
}

void reshard_into(Trainer& trainer, const Checkpoint& checkpoint) {
  const core::Plan stored = core::plan_from_json(checkpoint.manifest.plan);
  CheckpointShardFiles files(checkpoint);
  CheckpointResharder resharder(stored, files);
  ProcessGroups& groups = trainer.groups();
  ParameterStore& parameters = trainer.stage().parameters();
  Tensor& m = trainer.optimizer().first_moment();
  Tensor& v = trainer.optimizer().second_moment();
  const bool zero = trainer.plan().parallel.distributed_optimizer && groups.data->size() > 1;
  const int64_t moment_begin = zero ? groups.data->rank() * m.numel() : 0;
  CheckpointResharder::RankState state = resharder.rank_state(parameters.all(), groups.tensor->rank(),
                                                              groups.tensor->size(), moment_begin, m.numel());
  const ReshardFault fault = reshard_fault();
  for (size_t i = 0; i < parameters.all().size(); ++i) {
    Parameter& p = parameters.all()[i];
    if (p.name == fault.reversed_parameter) std::reverse(state.values[i].begin(), state.values[i].end());
    parameters.write_values(p, state.values[i]);
  }
  if (fault.drop_second_moment) std::fill(state.v.begin(), state.v.end(), 0.0f);
  copy_into(trainer.kernels(), m, state.m, "optimizer/m");
  copy_into(trainer.kernels(), v, state.v, "optimizer/v");
}

}  // namespace

std::optional<ResumedCheckpoint> resume_checkpoint(Trainer& trainer, Communicator& world,
                                                   const std::filesystem::path& dir) {
  const std::optional<Checkpoint> found = resumable_checkpoint(dir, trainer.plan(), world.rank() == 0);
  if (!found) return std::nullopt;
  const Checkpoint& checkpoint = *found;
  ResumedCheckpoint resumed{checkpoint.manifest.step, checkpoint.manifest.world_size, false};
  if (checkpoint.manifest.world_size == world.size() && written_for(checkpoint.manifest.plan, trainer.plan())) {
    const SafeTensorsFile shard = read_rank_shard(checkpoint, world.rank());
    ParameterStore& parameters = trainer.stage().parameters();
    for (Parameter& p : parameters.all()) parameters.write_values(p, shard.f32("param/" + p.name));
    copy_into(trainer.kernels(), trainer.optimizer().first_moment(), shard.f32("optimizer/m"), "optimizer/m");
    copy_into(trainer.kernels(), trainer.optimizer().second_moment(), shard.f32("optimizer/v"), "optimizer/v");
    return resumed;
  }
  // Another plan of the same model: every rank assembles its own shards from the old ones. An
  // error on one rank (a damaged shard) must not leave the others waiting: all agree first.
  std::string error;
  try {
    reshard_into(trainer, checkpoint);
  } catch (const Error& e) {
    error = e.what();
  }
  double failed = error.empty() ? 0.0 : 1.0;
  world.all_reduce_sum(&failed, 1);
  if (!error.empty()) throw InvalidInput("{}", error);
  if (failed > 0) throw InvalidInput("another rank could not reshard checkpoint {}", checkpoint.directory.string());
  resumed.resharded = true;
  return resumed;
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
