#include "executor/checkpoint/reshard.hpp"

#include "core/error.hpp"                      // loom::InvalidInput
#include "executor/model/model_parameters.hpp"  // declare_model_parameters

#include <fmt/format.h>  // messages
#include <fmt/ranges.h>  // shapes in messages

#include <algorithm>  // std::min, std::max, std::copy
#include <numeric>    // std::accumulate

namespace loom::exec {
namespace {

int64_t product(const std::vector<int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
}

bool zero_of(const core::Plan& plan) {
  return plan.parallel.distributed_optimizer && plan.parallel.data_parallel > 1;
}

}  // namespace

int64_t CheckpointShardFiles::element_count(int64_t rank, const std::string& tensor) {
  return reader(rank).info(tensor).element_count();
}

std::vector<float> CheckpointShardFiles::read(int64_t rank, const std::string& tensor, int64_t begin, int64_t count) {
  return reader(rank).read_f32(tensor, begin, count);
}

SafeTensorsReader& CheckpointShardFiles::reader(int64_t rank) {
  auto found = readers_.find(rank);
  if (found != readers_.end()) return *found->second;
  if (rank < 0 || rank >= checkpoint_.manifest.world_size)
    throw InvalidInput("rank {} is outside the checkpoint's world size {}", rank, checkpoint_.manifest.world_size);
  auto reader = std::make_unique<SafeTensorsReader>(checkpoint_.shard_path(rank).string());
  const auto meta = [&](const char* key) {
    const auto at = reader->metadata().find(key);
    return at == reader->metadata().end() ? std::string("(none)") : at->second;
  };
  if (meta("format") != "loom-checkpoint-shard" || meta("step") != std::to_string(checkpoint_.manifest.step) ||
      meta("rank") != std::to_string(rank))
    throw InvalidInput("'{}' holds format '{}' step {} rank {}; expected 'loom-checkpoint-shard' step {} rank {}",
                       reader->path(), meta("format"), meta("step"), meta("rank"), checkpoint_.manifest.step, rank);
  return *readers_.emplace(rank, std::move(reader)).first->second;
}

std::vector<Parameter> stage_parameter_layout(const core::Plan& plan, int64_t pipeline_rank) {
  ParameterStore store;
  declare_model_parameters(store, plan.trained_model(), stage_layers(plan, pipeline_rank), pipeline_rank == 0,
                           pipeline_rank == plan.parallel.pipeline_parallel - 1);
  const int64_t t = plan.parallel.tensor_parallel;
  std::vector<Parameter> parameters = store.all();
  int64_t offset = 0;
  for (Parameter& p : parameters) {  // as ParameterStore::finalize lays them out
    p.local_shape = p.full_shape;
    if (p.sharding != Sharding::replicated) {
      const bool by_rows = p.sharding == Sharding::vocab_rows || p.sharding == Sharding::rows;
      p.local_shape[by_rows ? 0 : p.full_shape.size() - 1] /= t;
    }
    p.offset = offset;
    offset += product(p.local_shape);
  }
  return parameters;
}

std::vector<float> fit_full_tensor(std::vector<float> full, const std::vector<int64_t>& from, const std::vector<int64_t>& to,
                                   Sharding sharding, const std::string& name) {
  if (from == to) return full;
  if (sharding == Sharding::vocab_rows && from.size() == 2 && to.size() == 2 && from[1] == to[1]) {
    full.resize(size_t(to[0] * to[1]), 0.0f);  // padding rows: dropped, or zero (never a real token)
    return full;
  }
  throw InvalidInput("the checkpoint's {} has shape [{}]; this plan's model needs [{}]", name, fmt::join(from, ", "),
                     fmt::join(to, ", "));
}

CheckpointResharder::CheckpointResharder(const core::Plan& old_plan, ShardSource& source)
    : old_plan_(old_plan), old_layout_(core::RankLayout::of(old_plan.parallel)), source_(source),
      old_zero_(zero_of(old_plan)) {
  for (int64_t s = 0; s < old_plan.parallel.pipeline_parallel; ++s) old_stages_.push_back(stage_parameter_layout(old_plan, s));
  for (int64_t s = 0; s < int64_t(old_stages_.size()); ++s)
    for (const Parameter& p : old_stages_[size_t(s)]) by_name_.emplace(p.name, Located{s, &p});  // the first stage's copy
}

const CheckpointResharder::Located& CheckpointResharder::locate(const std::string& name) const {
  const auto found = by_name_.find(name);
  if (found == by_name_.end())
    throw InvalidInput("the checkpoint's plan has no parameter {}; was it written for another model?", name);
  return found->second;
}

std::vector<float> CheckpointResharder::moment_range(int64_t stage, int64_t tp, const std::string& tensor,
                                                     int64_t begin, int64_t count) {
  if (!old_zero_) return source_.read(old_layout_.rank({tp, 0, stage}), tensor, begin, count);
  // ZeRO-1: data rank d holds elements [d·S, (d+1)·S) of the stage's flat buffer.
  const int64_t block = source_.element_count(old_layout_.rank({tp, 0, stage}), tensor);
  std::vector<float> out;
  out.reserve(size_t(count));
  for (int64_t at = begin; at < begin + count;) {
    const int64_t d = at / block, end = std::min(begin + count, (d + 1) * block);
    const std::vector<float> part = source_.read(old_layout_.rank({tp, d, stage}), tensor, at - d * block, end - at);
    out.insert(out.end(), part.begin(), part.end());
    at = end;
  }
  return out;
}

std::vector<float> CheckpointResharder::gather(const Parameter& p, const std::string& what) {
  const Located& located = locate(p.name);
  const Parameter& old = *located.old;
  const int64_t t = old.sharding == Sharding::replicated ? 1 : old_plan_.parallel.tensor_parallel;
  const int64_t local = product(old.local_shape);
  std::vector<float> gathered;
  gathered.reserve(size_t(local * t));
  for (int64_t tp = 0; tp < t; ++tp) {
    const std::vector<float> part =
        what == "param" ? source_.read(old_layout_.rank({tp, 0, located.stage}), "param/" + p.name, 0, local)
                        : moment_range(located.stage, tp, what, old.offset, local);
    gathered.insert(gathered.end(), part.begin(), part.end());
  }
  return fit_full_tensor(ParameterStore::unshard(gathered, old, t), old.full_shape, p.full_shape, p.sharding, p.name);
}

std::vector<float> CheckpointResharder::full_values(const Parameter& p) { return gather(p, "param"); }

std::vector<float> CheckpointResharder::full_moment(const Parameter& p, Moment moment) {
  return gather(p, moment == Moment::first ? "optimizer/m" : "optimizer/v");
}

CheckpointResharder::RankState CheckpointResharder::rank_state(const std::vector<Parameter>& parameters,
                                                               int64_t tensor_rank, int64_t tensor_size,
                                                               int64_t moment_begin, int64_t moment_size) {
  RankState state;
  state.m.assign(size_t(moment_size), 0.0f);
  state.v.assign(size_t(moment_size), 0.0f);
  for (const Parameter& p : parameters) {
    state.values.push_back(ParameterStore::shard(full_values(p), p, tensor_rank, tensor_size));
    const int64_t n = product(p.local_shape);
    const int64_t lo = std::max(moment_begin, p.offset), hi = std::min(moment_begin + moment_size, p.offset + n);
    if (lo >= hi) continue;  // outside this rank's ZeRO-1 block
    for (const auto& [moment, into] : {std::pair{Moment::first, &state.m}, std::pair{Moment::second, &state.v}}) {
      const std::vector<float> mine = ParameterStore::shard(full_moment(p, moment), p, tensor_rank, tensor_size);
      std::copy(mine.begin() + (lo - p.offset), mine.begin() + (hi - p.offset), into->begin() + (lo - moment_begin));
    }
  }
  return state;
}

}  // namespace loom::exec
