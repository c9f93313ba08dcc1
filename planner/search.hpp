#pragma once
// The search: every valid plan of the space is scored by the simulator; the best by the
// objective, and the Pareto front of step time against peak memory, come back with their full
// predictions and the reasons everything else was rejected.

#include "planner/search_space.hpp"
#include "simulator/prediction.hpp"

#include <functional>
#include <vector>

namespace loom::plan {

struct RankedPlan {
  core::Plan plan;
  sim::Prediction prediction;
  double cost_per_step = 0;  // price per device-hour × devices × step time (0 without a price)
};

// A plan that would be valid but needs more memory than the device has.
struct NearMiss {
  core::Plan plan;
  int64_t peak_memory_bytes = 0;
  int64_t lacking_bytes = 0;
};

struct SearchStats {
  int64_t combinations = 0;  // points of the space examined
  int64_t valid = 0;         // passed Megatron's rules
  int64_t fitting = 0;       // valid and within device memory
  int64_t evaluated = 0;     // valid plans scored (memory, and a step-time bound when they fit)
  int64_t simulated = 0;     // full event simulations run
  double enumerate_s = 0;    // walking the space and checking the rules
  double score_s = 0;        // memory and step-time bound of every valid plan
  double simulate_s = 0;     // full simulations, ranking and the reported predictions
  double elapsed_s = 0;
};

struct SearchResult {
  std::vector<RankedPlan> top;     // best first
  std::vector<RankedPlan> pareto;  // ascending peak memory, descending step time
  std::vector<NearMiss> nearest_misses;  // the valid plans that do not fit but come closest
  RejectCounts rejects;
  SearchStats stats;
};

struct SearchOptions {
  int64_t top = 10;
  bool pareto = false;
  int64_t nearest_misses = 5;
  int threads = 0;  // 0: every core
  // Called now and then from the searching thread with the fraction done (0…1).
  std::function<void(double)> progress;
  // Asked now and then from the searching thread; once it returns true the search stops and
  // throws loom::Cancelled (the desktop app's Cancel button).
  std::function<bool()> cancelled;
};

// Exact: the result is what simulating every valid plan would give (plans are simulated in
// order of a proven lower bound on their step time, and the rest skipped only when the bound
// shows they cannot place). Throws InvalidInput for a bad request; returns an empty `top` (and
// the nearest misses) when no plan fits.
SearchResult search(const SearchRequest& request, const SearchOptions& options = {});

// The same search without pruning: every fitting plan simulated. For tests and benchmarks.
SearchResult search_exhaustively(const SearchRequest& request, const SearchOptions& options = {});

}  // namespace loom::plan
