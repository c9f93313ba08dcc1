#pragma once
// The uneven pipeline splits a search tries (issue 23), in a form small enough for millions of
// candidates to carry: not the layer counts themselves but a few numbers from which
// write_layer_split rebuilds them, the same way every time.
//
// Two forms besides the even split:
//  - ends: the first virtual stage (embedding) holds `first` layers and the last (output layer and
//    loss) `last`; the layers between spread evenly over the middle virtual stages, the extra ones
//    (when they do not divide) placed next to the lighter end first. On a mixed cluster of at most
//    kMaxSplitGroups groups, each group's middle stages hold their own total (`group_layers`, the
//    last group the rest), so that stages on a faster device can take more layers.
//  - composition: on small spaces, every split at all, numbered in lexicographic order, so that
//    the search over them is exact without any guidance.

#include "core/cluster_spec.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace loom::plan {

// Mixed clusters with more groups than this spread the middle layers evenly over all of them.
inline constexpr int kMaxSplitGroups = 3;
// Below this many possible splits of a (pp, v), every one is searched.
inline constexpr int64_t kAllSplitsUpTo = 32;

enum class SplitForm : uint8_t { even, ends, composition };

// 10 bytes: a plan::Candidate with it stays within 48.
struct LayerSplit {
  SplitForm form = SplitForm::even;
  uint8_t virtual_stages = 1;  // v: the split lists pp · v virtual stages (uneven splits try v ≤ 255)
  int16_t first = 0;           // ends: layers of the first virtual stage; composition: its number
  int16_t last = 0;            // ends: layers of the last virtual stage
  std::array<int16_t, kMaxSplitGroups - 1> group_layers{};  // ends, mixed: middle layers of each group but the last

  bool operator==(const LayerSplit&) const = default;
};

// The pipeline rank's device group for every rank of a plan on `groups` whose stages are
// `stage_ranks` = tp × dp ranks each (all 0 on a cluster of one kind).
std::vector<int64_t> rank_groups_of(const std::vector<core::DeviceGroup>& groups, int64_t pipeline_parallel,
                                    int64_t stage_ranks);

// The layers of each virtual stage (model order, pp · v entries) that `split` stands for, written
// into `out`; cleared for the even form. `rank_groups` as rank_groups_of gives them.
void write_layer_split(const LayerSplit& split, int64_t layers, int64_t pipeline_parallel,
                       const std::vector<int64_t>& rank_groups, std::vector<int64_t>& out);

// How many splits of `layers` over `stages` virtual stages there are (the first and last may hold
// none, the others at least one), or nothing when more than `cap`.
std::optional<int64_t> split_count(int64_t layers, int64_t stages, int64_t cap);

}  // namespace loom::plan
