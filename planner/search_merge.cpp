#include "planner/search_merge.hpp"

#include <algorithm>
#include <tuple>

namespace loom::plan {
namespace {

// A plan with where it came from, so that ties keep the parts' own order (earlier part first).
struct Entry {
  RankedPlan plan;
  size_t part = 0, rank = 0;
};

double objective_key(Objective objective, const RankedPlan& r) {
  return objective == Objective::cost ? r.prediction.step_time_s * double(r.plan.cluster.world_size())
                                      : r.prediction.step_time_s;
}

std::vector<Entry> entries(std::vector<SearchResult>& parts, std::vector<RankedPlan> SearchResult::*list) {
  std::vector<Entry> all;
  for (size_t p = 0; p < parts.size(); ++p)
    for (size_t r = 0; r < (parts[p].*list).size(); ++r) all.push_back({std::move((parts[p].*list)[r]), p, r});
  return all;
}

}  // namespace

SearchResult merge_search_results(std::vector<SearchResult> parts, Objective objective, const SearchOptions& options) {
  SearchResult merged;
  for (const SearchResult& part : parts) {
    merged.rejects += part.rejects;
    merged.stats.combinations += part.stats.combinations;
    merged.stats.valid += part.stats.valid;
    merged.stats.fitting += part.stats.fitting;
    merged.stats.evaluated += part.stats.evaluated;
    merged.stats.simulated += part.stats.simulated;
    merged.stats.enumerate_s += part.stats.enumerate_s;
    merged.stats.score_s += part.stats.score_s;
    merged.stats.simulate_s += part.stats.simulate_s;
    merged.stats.elapsed_s += part.stats.elapsed_s;
  }

  // The best: by the objective as each part ranked them (memory: the peak, then the step time).
  std::vector<Entry> top = entries(parts, &SearchResult::top);
  std::stable_sort(top.begin(), top.end(), [&](const Entry& a, const Entry& b) {
    const RankedPlan &x = a.plan, &y = b.plan;
    if (objective == Objective::memory)
      return std::tie(x.prediction.peak_memory_bytes, x.prediction.step_time_s, a.part, a.rank) <
             std::tie(y.prediction.peak_memory_bytes, y.prediction.step_time_s, b.part, b.rank);
    return std::make_tuple(objective_key(objective, x), a.part, a.rank) <
           std::make_tuple(objective_key(objective, y), b.part, b.rank);
  });
  const size_t k = size_t(std::max<int64_t>(options.top, 0));
  for (size_t i = 0; i < top.size() && i < k; ++i) merged.top.push_back(std::move(top[i].plan));

  // The front of the union is the front of the parts' fronts: by memory, keep each plan faster
  // than every plan needing no more memory.
  std::vector<Entry> front = entries(parts, &SearchResult::pareto);
  std::stable_sort(front.begin(), front.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.plan.prediction.peak_memory_bytes, a.plan.prediction.step_time_s, a.part, a.rank) <
           std::tie(b.plan.prediction.peak_memory_bytes, b.plan.prediction.step_time_s, b.part, b.rank);
  });
  for (Entry& e : front) {
    if (!merged.pareto.empty() && e.plan.prediction.step_time_s >= merged.pareto.back().prediction.step_time_s)
      continue;
    merged.pareto.push_back(std::move(e.plan));
  }

  std::vector<NearMiss> misses;
  for (SearchResult& part : parts)
    for (NearMiss& miss : part.nearest_misses) misses.push_back(std::move(miss));
  std::stable_sort(misses.begin(), misses.end(), [](const NearMiss& a, const NearMiss& b) {
    return std::tie(a.lacking_bytes, a.peak_memory_bytes) < std::tie(b.lacking_bytes, b.peak_memory_bytes);
  });
  misses.resize(std::min(misses.size(), size_t(std::max<int64_t>(options.nearest_misses, 0))));
  merged.nearest_misses = std::move(misses);
  return merged;
}

}  // namespace loom::plan
