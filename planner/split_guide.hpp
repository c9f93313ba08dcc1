#pragma once
// Which uneven layer splits a search tries for one combination of the other knobs. Every split of
// every combination would be far too many (C(L + 1, pp·v − 1): 1.3·10^10 for 96 layers over 8
// stages), so the simulator's own per-layer costs guide the choice: a layer's forward + backward
// (+ recompute) on each device group, the embedding's on the first stage and the output layer
// with the loss on the last. The splits that best balance the pipeline ranks' times under that
// model (the bottleneck first, then the total) are kept, a few around the balanced point; on small
// spaces every split is kept, so the search over them is exact without any model.

#include "planner/layer_split.hpp"
#include "planner/search_space.hpp"
#include "simulator/cost_model.hpp"

#include <map>
#include <memory>
#include <tuple>
#include <vector>

namespace loom::plan {

// Uneven splits kept per combination besides the even one.
inline constexpr int kGuidedSplits = 3;

class SplitGuide {
 public:
  explicit SplitGuide(const SearchRequest& request);

  // The uneven splits to try for `candidate` (its own split ignored) with `virtual_stages` per
  // pipeline rank; never the even split, each split valid in its counts (at least one layer on
  // every middle stage, summing to the layers). Empty when none is possible (pp = 1).
  const std::vector<LayerSplit>& splits(const Candidate& candidate, int64_t virtual_stages);

 private:
  // Per-microbatch time of one layer, the embedding and the output layer + loss on a group.
  struct StageCosts {
    double layer_s = 0, embedding_s = 0, output_s = 0;
  };
  const StageCosts& costs_of(const Candidate& candidate, int64_t group);
  std::vector<LayerSplit> guided(const Candidate& candidate, int64_t virtual_stages,
                                 const std::vector<int64_t>& rank_groups);

  const SearchRequest& request_;
  std::vector<std::unique_ptr<sim::CostModel>> group_costs_;  // one per device group
  core::Plan probe_;
  std::vector<int64_t> scratch_;
  std::map<std::tuple<int32_t, int32_t, int64_t, int32_t, int, bool, bool, int64_t>, std::vector<LayerSplit>> splits_;
  std::map<std::tuple<int32_t, int32_t, int, bool, bool, int64_t>, StageCosts> stage_costs_;
};

}  // namespace loom::plan
