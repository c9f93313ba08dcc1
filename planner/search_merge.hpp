#pragma once
// One result from the results of searches over disjoint parts of a space (a mixed cluster's
// group orders): the best by the objective, the Pareto front, the nearest misses, and the counts.
// Each part's result is exact, so the merge is exact over their union.

#include "planner/search.hpp"

#include <vector>

namespace loom::plan {

SearchResult merge_search_results(std::vector<SearchResult> parts, Objective objective, const SearchOptions& options);

}  // namespace loom::plan
