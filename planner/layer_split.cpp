#include "planner/layer_split.hpp"

#include <algorithm>

namespace loom::plan {
namespace {

// C(n, k), or cap + 1 once it passes cap. C(n − k + i, i) grows with i, so the running product
// never needs more than cap · n.
int64_t binomial_capped(int64_t n, int64_t k, int64_t cap) {
  if (k < 0 || k > n) return 0;
  k = std::min(k, n - k);
  int64_t r = 1;
  for (int64_t i = 1; i <= k; ++i) {
    r = r * (n - k + i) / i;
    if (r > cap) return cap + 1;
  }
  return r;
}

// Number `index` of the splits of `layers` over `stages`, in lexicographic order. Adding one layer
// to each end makes every part positive: a composition of layers + 2 into `stages` parts.
void unrank_composition(int64_t index, int64_t layers, int64_t stages, std::vector<int64_t>& out) {
  out.resize(size_t(stages));
  int64_t remaining = layers + 2;
  for (int64_t i = 0; i < stages; ++i) {
    const int64_t parts_left = stages - i;
    int64_t part = remaining;
    if (parts_left > 1) {
      for (part = 1;; ++part) {
        const int64_t with_this = binomial_capped(remaining - part - 1, parts_left - 2, index);
        if (index < with_this) break;
        index -= with_this;
      }
    }
    out[size_t(i)] = part;
    remaining -= part;
  }
  out.front() -= 1;
  out.back() -= 1;
}

// Spreads `total` layers over the virtual stages `stages` (ascending), the extra ones (total
// modulo their count) alternately from the front and the back, starting at the front when the
// first virtual stage is the lighter end: the stages beside a light end take up its slack.
void spread(const std::vector<int64_t>& stages, int64_t total, bool front_first, std::vector<int64_t>& out) {
  const int64_t n = int64_t(stages.size());
  if (n == 0) return;
  const int64_t base = total / n;
  int64_t extra = total % n;
  for (int64_t s : stages) out[size_t(s)] = base;
  for (int64_t lo = 0, hi = n - 1, turn = front_first ? 0 : 1; extra > 0; --extra, ++turn)
    out[size_t(stages[size_t(turn % 2 == 0 ? lo++ : hi--)])] += 1;
}

}  // namespace

std::vector<int64_t> rank_groups_of(const std::vector<core::DeviceGroup>& groups, int64_t pipeline_parallel,
                                    int64_t stage_ranks) {
  std::vector<int64_t> out(size_t(pipeline_parallel), 0);
  if (groups.empty()) return out;
  size_t g = 0;
  int64_t group_end = groups[0].devices();
  for (int64_t r = 0; r < pipeline_parallel; ++r) {
    const int64_t first_rank = r * stage_ranks;
    while (first_rank >= group_end && g + 1 < groups.size()) group_end += groups[++g].devices();
    out[size_t(r)] = int64_t(g);
  }
  return out;
}

void write_layer_split(const LayerSplit& split, int64_t layers, int64_t pipeline_parallel,
                       const std::vector<int64_t>& rank_groups, std::vector<int64_t>& out) {
  if (split.form == SplitForm::even) {
    out.clear();
    return;
  }
  const int64_t stages = pipeline_parallel * split.virtual_stages;
  if (split.form == SplitForm::composition) {
    unrank_composition(split.first, layers, stages, out);
    return;
  }
  out.assign(size_t(stages), 0);
  out.front() = split.first;
  out.back() = split.last;
  if (stages < 3) return;
  const bool front_first = split.first <= split.last;
  const int64_t middle = layers - split.first - split.last;
  const int64_t groups = rank_groups.empty() ? 1 : rank_groups.back() + 1;
  thread_local std::vector<int64_t> members;  // reused: a search writes a split for every plan it scores
  members.clear();
  if (groups < 2 || groups > kMaxSplitGroups) {
    for (int64_t s = 1; s + 1 < stages; ++s) members.push_back(s);
    spread(members, middle, front_first, out);
    return;
  }
  int64_t left = middle;
  for (int64_t g = 0; g < groups; ++g) {
    members.clear();
    for (int64_t s = 1; s + 1 < stages; ++s)
      if (rank_groups[size_t(s % pipeline_parallel)] == g) members.push_back(s);
    const int64_t total = g + 1 < groups ? split.group_layers[size_t(g)] : left;
    spread(members, total, front_first, out);
    left -= total;
  }
}

std::optional<int64_t> split_count(int64_t layers, int64_t stages, int64_t cap) {
  if (stages <= 1) return 1;
  const int64_t count = binomial_capped(layers + 1, stages - 1, cap);
  if (count > cap) return std::nullopt;
  return count;
}

}  // namespace loom::plan
