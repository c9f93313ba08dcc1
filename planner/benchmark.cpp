#include "planner/benchmark.hpp"

#include "planner/evaluator.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

namespace loom::plan {

EvaluationRate measure_evaluation_rate(const SearchRequest& request, int threads, double min_seconds) {
  RejectCounts rejects;
  int64_t combinations = 0;
  const std::vector<Candidate> candidates = enumerate_candidates(request, rejects, combinations);
  EvaluationRate rate;
  rate.threads = threads;
  if (candidates.empty()) return rate;

  std::atomic<int64_t> evaluations{0};
  std::atomic<bool> stop{false};
  auto work = [&]() {
    Evaluator evaluator(request);
    Scored scored;
    for (const Candidate& c : candidates) evaluator.score(c, scored);  // the first pass also fills the caches
    int64_t mine = int64_t(candidates.size());
    while (!stop.load(std::memory_order_relaxed)) {
      for (const Candidate& c : candidates) evaluator.score(c, scored);
      mine += int64_t(candidates.size());
    }
    evaluations += mine;
  };
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  std::this_thread::sleep_for(std::chrono::duration<double>(min_seconds));
  stop = true;
  for (std::thread& thread : pool) thread.join();
  rate.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  rate.evaluations = evaluations;
  return rate;
}

}  // namespace loom::plan
