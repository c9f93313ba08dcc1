#include "core/rank_layout.hpp"

#include "core/error.hpp"

#include <algorithm>

namespace loom::core {

std::string_view to_string(GroupKind kind) {
  switch (kind) {
    case GroupKind::tensor: return "tensor";
    case GroupKind::data: return "data";
    case GroupKind::pipeline: return "pipeline";
    case GroupKind::model: return "model";
    case GroupKind::embedding: return "embedding";
  }
  return "?";
}

RankLayout::RankLayout(int64_t tensor_parallel, int64_t data_parallel, int64_t pipeline_parallel)
    : tensor_(tensor_parallel), data_(data_parallel), pipeline_(pipeline_parallel) {
  if (tensor_ <= 0 || data_ <= 0 || pipeline_ <= 0)
    throw InvalidInput("rank layout needs positive sizes, got tp={} dp={} pp={}", tensor_, data_, pipeline_);
}

RankLayout RankLayout::of(const ParallelPlan& plan) {
  return RankLayout(plan.tensor_parallel, plan.data_parallel, plan.pipeline_parallel);
}

int64_t RankLayout::size(GroupKind kind) const {
  switch (kind) {
    case GroupKind::tensor: return tensor_;
    case GroupKind::data: return data_;
    case GroupKind::pipeline: return pipeline_;
    case GroupKind::model: return tensor_ * pipeline_;
    case GroupKind::embedding: return pipeline_ > 1 ? 2 : 1;
  }
  return 0;
}

RankCoords RankLayout::coords(int64_t rank) const {
  if (rank < 0 || rank >= world_size())
    throw InvalidInput("rank {} is outside the world of {} ranks", rank, world_size());
  return {rank % tensor_, (rank / tensor_) % data_, rank / (tensor_ * data_)};
}

int64_t RankLayout::rank(const RankCoords& c) const {
  return c.tensor + tensor_ * (c.data + data_ * c.pipeline);
}

std::vector<int64_t> RankLayout::group(GroupKind kind, int64_t member) const {
  const RankCoords at = coords(member);
  std::vector<int64_t> ranks;
  switch (kind) {
    case GroupKind::tensor:
      for (int64_t t = 0; t < tensor_; ++t) ranks.push_back(rank({t, at.data, at.pipeline}));
      break;
    case GroupKind::data:
      for (int64_t d = 0; d < data_; ++d) ranks.push_back(rank({at.tensor, d, at.pipeline}));
      break;
    case GroupKind::pipeline:
      for (int64_t p = 0; p < pipeline_; ++p) ranks.push_back(rank({at.tensor, at.data, p}));
      break;
    case GroupKind::model:
      for (int64_t p = 0; p < pipeline_; ++p)
        for (int64_t t = 0; t < tensor_; ++t) ranks.push_back(rank({t, at.data, p}));
      break;
    case GroupKind::embedding:
      if (at.pipeline != 0 && at.pipeline != pipeline_ - 1) break;
      ranks.push_back(rank({at.tensor, at.data, 0}));
      if (pipeline_ > 1) ranks.push_back(rank({at.tensor, at.data, pipeline_ - 1}));
      break;
  }
  std::sort(ranks.begin(), ranks.end());
  return ranks;
}

std::vector<std::vector<int64_t>> RankLayout::groups(GroupKind kind) const {
  std::vector<std::vector<int64_t>> all;
  std::vector<bool> placed(size_t(world_size()), false);
  for (int64_t r = 0; r < world_size(); ++r) {
    if (placed[size_t(r)]) continue;
    std::vector<int64_t> members = group(kind, r);
    if (members.empty()) continue;
    for (int64_t m : members) placed[size_t(m)] = true;
    all.push_back(std::move(members));
  }
  return all;
}

int64_t node_of(int64_t rank, int64_t devices_per_node) { return rank / devices_per_node; }

bool spans_nodes(const std::vector<int64_t>& ranks, int64_t devices_per_node) {
  if (ranks.empty()) return false;
  const int64_t first = node_of(ranks.front(), devices_per_node);
  return std::any_of(ranks.begin(), ranks.end(),
                     [&](int64_t r) { return node_of(r, devices_per_node) != first; });
}

}  // namespace loom::core
