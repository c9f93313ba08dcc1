#pragma once
// Where each rank sits in the parallel grid, in Megatron-LM's order: tensor-parallel rank varies
// fastest, then data-parallel, then pipeline (rank = tp + t·(dp + d·pp)). Every process group is
// a slice of this grid, derived here and nowhere else.

#include "core/parallel_plan.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

namespace loom::core {

enum class GroupKind {
  tensor,     // same data and pipeline coordinates
  data,       // same tensor and pipeline coordinates
  pipeline,   // same tensor and data coordinates
  model,      // same data coordinate: one full model replica (tp × pp ranks)
  embedding,  // first and last stage of one pipeline group (the tied embedding's owners)
};

std::string_view to_string(GroupKind kind);

struct RankCoords {
  int64_t tensor = 0;
  int64_t data = 0;
  int64_t pipeline = 0;
  bool operator==(const RankCoords&) const = default;
};

class RankLayout {
 public:
  RankLayout(int64_t tensor_parallel, int64_t data_parallel, int64_t pipeline_parallel);
  static RankLayout of(const ParallelPlan& plan);

  int64_t world_size() const { return tensor_ * data_ * pipeline_; }
  int64_t size(GroupKind kind) const;

  RankCoords coords(int64_t rank) const;
  int64_t rank(const RankCoords& coords) const;

  // The ranks of `rank`'s group of that kind, ascending. For the embedding group, empty when the
  // rank is neither on the first nor the last pipeline stage.
  std::vector<int64_t> group(GroupKind kind, int64_t rank) const;
  // Every group of that kind, each ascending, ordered by their smallest rank.
  std::vector<std::vector<int64_t>> groups(GroupKind kind) const;

 private:
  int64_t tensor_, data_, pipeline_;
};

// Which node a rank runs on when ranks fill nodes in order, `devices_per_node` at a time.
int64_t node_of(int64_t rank, int64_t devices_per_node);
// Whether a group's members sit on more than one node.
bool spans_nodes(const std::vector<int64_t>& ranks, int64_t devices_per_node);

}  // namespace loom::core
