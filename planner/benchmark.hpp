#pragma once
// Measurements of the planner's own speed, for `loom bench planner`.

#include "planner/search.hpp"

namespace loom::plan {

struct EvaluationRate {
  int threads = 0;
  int64_t evaluations = 0;  // valid plans scored (memory and step-time bound)
  double seconds = 0;
  double per_second() const { return seconds > 0 ? double(evaluations) / seconds : 0; }
};

// Scores every valid plan of the request's space over and over on `threads` threads (each its own
// evaluator, as in a search, so the first pass pays for filling its caches) for at least
// `min_seconds`.
EvaluationRate measure_evaluation_rate(const SearchRequest& request, int threads, double min_seconds);

}  // namespace loom::plan
