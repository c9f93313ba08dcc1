#pragma once
// The ranking of a plan search as `loom plan` and `loom replan` print it, so that both read alike:
// a readable table (with the rejects and, when nothing fits, the nearest misses), the
// "loom-plan-search" JSON document, or CSV.

#include "core/json_reader.hpp"  // core::Json
#include "planner/search.hpp"    // SearchRequest, SearchResult

namespace loom::cli {

// The heading, the search's statistics, the best plans; the Pareto front with `pareto`; the
// reject reasons with `explain` or when nothing fits; then the nearest misses.
void print_search_table(const plan::SearchRequest& request, const plan::SearchResult& result,
                        bool pareto, bool explain);
core::Json search_result_json(const plan::SearchRequest& request, const plan::SearchResult& result);
void print_search_csv(const plan::SearchResult& result);

}  // namespace loom::cli
