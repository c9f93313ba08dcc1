#include "core/plan.hpp"

// The layers of each virtual stage under the plan's split (Megatron's forms or Loom's general one);
// core/pipeline_split_rules.hpp checks them, so these assume a valid plan.

#include <algorithm>

namespace loom::core {

int64_t Plan::virtual_stages() const {
  const ParallelPlan& p = parallel;
  if (p.schedule != Schedule::interleaved || p.pipeline_parallel <= 0) return 1;
  if (!p.pipeline_layer_split.empty()) return std::max<int64_t>(1, int64_t(p.pipeline_layer_split.size()) / p.pipeline_parallel);
  if (p.virtual_stages_per_rank) return std::max<int64_t>(1, *p.virtual_stages_per_rank);
  if (!p.layers_per_virtual_stage || *p.layers_per_virtual_stage <= 0) return 1;
  const int64_t accounted = model.num_layers + int64_t(p.account_for_embedding) + int64_t(p.account_for_loss);
  return std::max<int64_t>(1, accounted / p.pipeline_parallel / *p.layers_per_virtual_stage);
}

std::vector<int64_t> Plan::virtual_stage_layers() const {
  const ParallelPlan& p = parallel;
  if (!p.pipeline_layer_split.empty()) return p.pipeline_layer_split;
  const int64_t pp = p.pipeline_parallel, v = virtual_stages(), layers = model.num_layers;
  std::vector<int64_t> counts(size_t(pp * v));
  if (p.first_stage_layers || p.last_stage_layers) {
    const int64_t rest_ranks = pp - int64_t(bool(p.first_stage_layers)) - int64_t(bool(p.last_stage_layers));
    const int64_t rest = layers - p.first_stage_layers.value_or(0) - p.last_stage_layers.value_or(0);
    const int64_t middle = rest_ranks > 0 ? rest / rest_ranks : 0;
    for (int64_t r = 0; r < pp; ++r) {
      int64_t on_rank = middle;
      if (r == 0 && p.first_stage_layers) on_rank = *p.first_stage_layers;
      if (r == pp - 1 && p.last_stage_layers) on_rank = *p.last_stage_layers;
      for (int64_t c = 0; c < v; ++c) counts[size_t(c * pp + r)] = on_rank / v;
    }
    return counts;
  }
  const int64_t accounted = layers + int64_t(p.account_for_embedding) + int64_t(p.account_for_loss);
  std::fill(counts.begin(), counts.end(), accounted / (pp * v));
  if (p.account_for_embedding) counts.front() -= 1;
  if (p.account_for_loss) counts.back() -= 1;
  return counts;
}

std::vector<int64_t> Plan::pipeline_rank_layers() const {
  const std::vector<int64_t> chunks = virtual_stage_layers();
  const int64_t pp = parallel.pipeline_parallel;
  std::vector<int64_t> ranks(size_t(pp), 0);
  for (size_t i = 0; i < chunks.size(); ++i) ranks[i % size_t(pp)] += chunks[i];
  return ranks;
}

bool Plan::even_layer_split() const {
  if (!parallel.has_layer_split_rule()) return true;
  const std::vector<int64_t> chunks = virtual_stage_layers();
  return std::all_of(chunks.begin(), chunks.end(), [&](int64_t c) { return c == chunks.front(); });
}

std::vector<int64_t> Plan::pipeline_rank_groups() const {
  const int64_t pp = parallel.pipeline_parallel;
  std::vector<int64_t> groups(size_t(pp), 0);
  if (!cluster.mixed()) return groups;
  const int64_t stage_ranks = parallel.tensor_parallel * parallel.data_parallel;
  for (int64_t r = 0; r < pp; ++r) groups[size_t(r)] = cluster.group_of_rank(r * stage_ranks);
  return groups;
}

}  // namespace loom::core
