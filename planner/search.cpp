#include "planner/search.hpp"

#include "planner/evaluator.hpp"
#include "planner/search_merge.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <exception>
#include <mutex>
#include <thread>
#include <tuple>

namespace loom::plan {
namespace {

int thread_count(const SearchOptions& options) {
  if (options.threads > 0) return options.threads;
  return std::max(1, int(std::thread::hardware_concurrency()));
}

// One evaluator per thread, kept for the whole search so that its caches (layer costs,
// schedules) serve every phase.
using Evaluators = std::vector<std::unique_ptr<Evaluator>>;

// Runs work(evaluator, i) for every i in [0, n), spread over the evaluators' threads, which take
// items in chunks. Stops early, throwing Cancelled, when the options' `cancelled` says so.
template <typename Work>
void parallel_for(Evaluators& evaluators, size_t n, const SearchOptions& options, bool reports_progress, Work work) {
  std::atomic<size_t> next{0};
  std::atomic<size_t> done{0};
  std::atomic<bool> stopped{false};
  constexpr size_t kChunk = 64;
  const std::function<void(double)>& progress = options.progress;
  // The calling thread (`first`) asks whether to stop and reports progress.
  auto run_items = [&](Evaluator& evaluator, bool first) {
    while (!stopped) {
      if (first && options.cancelled && options.cancelled()) {
        stopped = true;
        break;
      }
      const size_t begin = next.fetch_add(kChunk);
      if (begin >= n) break;
      const size_t end = std::min(n, begin + kChunk);
      for (size_t i = begin; i < end; ++i) work(evaluator, i);
      done += end - begin;
      if (first && reports_progress && progress) progress(0.1 + 0.9 * double(done) / double(n));
    }
  };
  // The first error any thread meets (a profile that cannot time a plan, say) stops every thread
  // and is rethrown here once all have joined; escaping a thread it would end the process.
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto run = [&](Evaluator& evaluator, bool first) noexcept {
    try {
      run_items(evaluator, first);
    } catch (...) {
      const std::lock_guard lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      stopped = true;
    }
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < evaluators.size() && t * kChunk < n; ++t) helpers.emplace_back(run, std::ref(*evaluators[t]), false);
  run(*evaluators[0], true);
  for (std::thread& helper : helpers) helper.join();
  if (failure) std::rethrow_exception(failure);
  if (stopped) throw Cancelled("the search was cancelled");
}

void throw_if_cancelled(const SearchOptions& options) {
  if (options.cancelled && options.cancelled()) throw Cancelled("the search was cancelled");
}

// The objective's ranking key from a step time; smaller is better.
double objective_key(Objective objective, const Candidate& c, double step_time_s) {
  return objective == Objective::cost ? step_time_s * double(c.devices) : step_time_s;
}

struct Context {
  const SearchRequest& request;
  const SearchOptions& options;
  std::vector<Candidate> candidates;
  std::vector<Scored> fitting;
  int threads;
  Evaluators evaluators;
  int64_t simulated = 0;
};

// Simulates the given fitting plans (indices into ctx.fitting) in parallel.
void simulate_all(Context& ctx, const std::vector<size_t>& which) {
  parallel_for(ctx.evaluators, which.size(), ctx.options, false, [&](Evaluator& evaluator, size_t i) {
    Scored& s = ctx.fitting[which[i]];
    if (s.exact_s < 0) s.exact_s = evaluator.simulate(ctx.candidates[s.index]);
  });
  ctx.simulated += int64_t(which.size());
}

// Simulates fitting plans in the order given, in batches, until `done(next)` says the rest cannot
// matter.
template <typename Done>
void simulate_in_order(Context& ctx, const std::vector<size_t>& order, Done done) {
  const size_t batch = size_t(std::max(16, ctx.threads * 8));
  for (size_t start = 0; start < order.size();) {
    if (done(order[start])) break;
    std::vector<size_t> chunk;
    for (size_t i = start; i < order.size() && chunk.size() < batch; ++i, ++start) {
      if (done(order[i])) break;
      if (ctx.fitting[order[i]].exact_s < 0) chunk.push_back(order[i]);
    }
    simulate_all(ctx, chunk);
  }
}

// The best `k` by the objective among fitting plans, exactly.
std::vector<size_t> best_plans(Context& ctx, bool exhaustive) {
  const Objective objective = ctx.request.objective;
  const auto& f = ctx.fitting;
  auto key_of = [&](size_t i, double time) { return objective_key(objective, ctx.candidates[f[i].index], time); };
  std::vector<size_t> order(f.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const size_t k = size_t(std::max<int64_t>(ctx.options.top, 0));
  if (k == 0 && !exhaustive) return {};

  if (objective == Objective::memory) {
    // Exact memory is known for every plan: the k smallest, all plans tied with the k-th
    // included, ranked by memory then simulated step time.
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::tie(f[a].peak_memory_bytes, f[a].bound_s, f[a].index) < std::tie(f[b].peak_memory_bytes, f[b].bound_s, f[b].index);
    });
    size_t end = std::min(k, order.size());
    while (end < order.size() && end > 0 && f[order[end]].peak_memory_bytes == f[order[end - 1]].peak_memory_bytes) ++end;
    if (exhaustive) end = order.size();
    std::vector<size_t> chosen(order.begin(), order.begin() + long(end));
    simulate_all(ctx, chosen);
    std::sort(chosen.begin(), chosen.end(), [&](size_t a, size_t b) {
      return std::tie(f[a].peak_memory_bytes, f[a].exact_s, f[a].index) < std::tie(f[b].peak_memory_bytes, f[b].exact_s, f[b].index);
    });
    chosen.resize(std::min(k, chosen.size()));
    return chosen;
  }

  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_pair(key_of(a, f[a].bound_s), f[a].index) < std::make_pair(key_of(b, f[b].bound_s), f[b].index);
  });
  // The k-th best key among simulated plans; a plan whose bound exceeds it cannot enter.
  auto kth_best = [&]() {
    std::vector<double> keys;
    for (size_t i : order)
      if (f[i].exact_s >= 0) keys.push_back(key_of(i, f[i].exact_s));
    if (keys.size() < k || k == 0) return std::numeric_limits<double>::infinity();
    std::nth_element(keys.begin(), keys.begin() + long(k - 1), keys.end());
    return keys[k - 1];
  };
  double threshold = std::numeric_limits<double>::infinity();
  size_t since_update = 0;
  simulate_in_order(ctx, order, [&](size_t i) {
    if (exhaustive) return false;
    if (++since_update >= 16) {
      threshold = kth_best();
      since_update = 0;
    }
    return key_of(i, f[i].bound_s) > threshold && (threshold = kth_best(), key_of(i, f[i].bound_s) > threshold);
  });
  std::vector<size_t> simulated;
  for (size_t i : order)
    if (f[i].exact_s >= 0) simulated.push_back(i);
  std::sort(simulated.begin(), simulated.end(), [&](size_t a, size_t b) {
    return std::make_pair(key_of(a, f[a].exact_s), f[a].index) < std::make_pair(key_of(b, f[b].exact_s), f[b].index);
  });
  simulated.resize(std::min(k, simulated.size()));
  return simulated;
}

// The Pareto front of step time against peak memory, exactly: walking plans by increasing
// memory, a plan can only join the front if it is faster than every plan needing no more memory.
std::vector<size_t> pareto_front(Context& ctx, bool exhaustive) {
  auto& f = ctx.fitting;
  std::vector<size_t> order(f.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(f[a].peak_memory_bytes, f[a].bound_s, f[a].index) < std::tie(f[b].peak_memory_bytes, f[b].bound_s, f[b].index);
  });
  if (exhaustive) simulate_all(ctx, order);
  std::vector<size_t> front;
  double fastest = std::numeric_limits<double>::infinity();
  for (size_t i : order) {
    if (f[i].bound_s >= fastest) continue;  // dominated: something with no more memory is at least as fast
    if (f[i].exact_s < 0) simulate_all(ctx, {i});
    if (f[i].exact_s >= fastest) continue;
    // Same memory as the previous member but faster: it replaces it.
    if (!front.empty() && f[front.back()].peak_memory_bytes == f[i].peak_memory_bytes) front.pop_back();
    front.push_back(i);
    fastest = f[i].exact_s;
  }
  return front;
}

RankedPlan ranked(const Context& ctx, size_t fitting_index) {
  const Candidate& c = ctx.candidates[ctx.fitting[fitting_index].index];
  RankedPlan r;
  r.plan = make_plan(c, ctx.request);
  sim::SimulationOptions options;
  options.record_timeline = false;
  r.prediction = ctx.request.groups.empty() ? sim::simulate(r.plan, ctx.request.profile, options)
                                            : sim::simulate(r.plan, ctx.request.group_profiles, options);
  if (ctx.request.price_per_device_hour)
    r.cost_per_step = *ctx.request.price_per_device_hour * double(c.devices) * r.prediction.step_time_s / 3600.0;
  return r;
}

SearchResult run_search(const SearchRequest& requested, const SearchOptions& options, bool exhaustive) {
  const auto started = std::chrono::steady_clock::now();
  requested.validate();
  // Plans train in the type the device computes in (fp32 on a CPU profile): memory and time
  // are searched for that, and the plans found say so.
  SearchRequest request = requested;
  request.training.dtype = sim::simulated_dtype(requested.training.dtype, requested.profile);
  Context ctx{request, options, {}, {}, thread_count(options), {}};
  for (int t = 0; t < ctx.threads; ++t) ctx.evaluators.push_back(std::make_unique<Evaluator>(request));
  SearchResult result;
  // Progress: walking the space is the first tenth, scoring every valid plan the rest.
  const std::function<void(double)> walk_progress =
      options.progress ? std::function<void(double)>([&](double f) { options.progress(0.1 * f); }) : nullptr;
  ctx.candidates =
      enumerate_candidates(request, result.rejects, result.stats.combinations, walk_progress, options.cancelled);
  result.stats.valid = int64_t(ctx.candidates.size());
  auto lap = [clock = std::chrono::steady_clock::now()]() mutable {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - clock).count();
    clock = now;
    return seconds;
  };
  result.stats.enumerate_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  std::vector<Scored> scored(ctx.candidates.size());
  parallel_for(ctx.evaluators, scored.size(), options, true, [&](Evaluator& evaluator, size_t i) {
    scored[i].index = uint32_t(i);
    evaluator.score(ctx.candidates[i], scored[i]);
  });
  result.stats.evaluated = int64_t(scored.size());
  result.stats.score_s = lap();

  // Each stage against its own group's devices (the evaluator's verdict), on a mixed cluster too.
  std::vector<Scored> misses;
  for (const Scored& s : scored) {
    if (!s.countable) ++result.rejects.not_countable;
    else if (s.fits) ctx.fitting.push_back(s);
    else misses.push_back(s);
  }
  result.rejects.does_not_fit = int64_t(misses.size());
  result.stats.fitting = int64_t(ctx.fitting.size());

  for (size_t i : best_plans(ctx, exhaustive)) {
    throw_if_cancelled(options);
    result.top.push_back(ranked(ctx, i));
  }
  if (options.pareto)
    for (size_t i : pareto_front(ctx, exhaustive)) {
      throw_if_cancelled(options);
      result.pareto.push_back(ranked(ctx, i));
    }

  const size_t near = std::min<size_t>(size_t(std::max<int64_t>(options.nearest_misses, 0)), misses.size());
  // Closest first: by what is lacking (the peak beyond the device on one kind of device).
  std::partial_sort(misses.begin(), misses.begin() + long(near), misses.end(), [](const Scored& a, const Scored& b) {
    return std::tie(a.excess_memory_bytes, a.peak_memory_bytes, a.index) <
           std::tie(b.excess_memory_bytes, b.peak_memory_bytes, b.index);
  });
  for (size_t i = 0; i < near; ++i)
    result.nearest_misses.push_back({make_plan(ctx.candidates[misses[i].index], request), misses[i].peak_memory_bytes,
                                     misses[i].excess_memory_bytes});

  result.stats.simulated = ctx.simulated;
  result.stats.simulate_s = lap();
  result.stats.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (options.progress) options.progress(1.0);
  return result;
}

// On a mixed cluster the order of the groups along the pipeline is a choice too: each distinct
// order is a search of its own (every plan of one order differs from every plan of another), and
// their exact results merge into the exact result over all orders.
SearchResult search_group_orders(const SearchRequest& request, const SearchOptions& options, bool exhaustive) {
  const size_t n = request.groups.size();
  if (!request.search_group_orders || n < 2 || n > kMaxOrderedGroups) return run_search(request, options, exhaustive);
  request.validate();  // a bad request is refused as given, before any reordering
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::vector<std::vector<core::DeviceGroup>> seen;  // two groups alike give one order, not two
  std::vector<SearchRequest> orders;
  do {
    SearchRequest ordered = request;
    for (size_t i = 0; i < n; ++i) {
      ordered.groups[i] = request.groups[order[i]];
      ordered.group_profiles[i] = request.group_profiles[order[i]];
    }
    if (std::find(seen.begin(), seen.end(), ordered.groups) != seen.end()) continue;
    seen.push_back(ordered.groups);
    ordered.profile_name = ordered.groups.front().profile;
    ordered.profile = ordered.group_profiles.front();
    orders.push_back(std::move(ordered));
  } while (std::next_permutation(order.begin(), order.end()));

  std::vector<SearchResult> parts;
  for (size_t k = 0; k < orders.size(); ++k) {
    SearchOptions part = options;
    if (options.progress)
      part.progress = [&, k](double f) { options.progress((double(k) + f) / double(orders.size())); };
    parts.push_back(run_search(orders[k], part, exhaustive));
  }
  return merge_search_results(std::move(parts), request.objective, options);
}

}  // namespace

SearchResult search(const SearchRequest& request, const SearchOptions& options) {
  return search_group_orders(request, options, false);
}

SearchResult search_exhaustively(const SearchRequest& request, const SearchOptions& options) {
  return search_group_orders(request, options, true);
}

}  // namespace loom::plan
