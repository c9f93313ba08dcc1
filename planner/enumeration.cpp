// The walk over the search space. Asking Megatron's rules about every combination one by one
// costs about 20 ns each, and --allow-fewer-devices on a million devices makes billions of them
// (minutes with nothing to show). The rules come in two groups: those about the model's split
// (tp, pp, micro-batch, schedule, sequence parallelism), which never look at the device count,
// and those about the devices and the batch, which come last. So the first group's verdict on
// each (tp, pp) is worked out once and reused for every device count, the tensor sizes that
// cannot split the model are counted in blocks, and only splits that can place a whole number
// of replicas and split the batch are checked one by one, exactly as Plan::violated_rule would.
// Uneven layer splits come after: each (tp, pp) that can place replicas is also tried with the
// splits planner/split_guide.hpp picks, for every choice of the other knobs that passes the rules
// about the model's split (asked once per (tp, pp) with a sample uneven split), each such try one
// more combination, checked one by one.

#include "planner/search_space.hpp"
#include "planner/split_guide.hpp"

#include "core/checked_arithmetic.hpp"
#include "core/error.hpp"
#include "core/limits.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>

namespace loom::plan {
namespace {

using RuleCounts = std::array<int64_t, core::kPlanRuleCount>;

constexpr core::Recompute kWalkedRecomputes[] = {core::Recompute::none, core::Recompute::selective,
                                                 core::Recompute::full};

// Device counts to try: all of them, or with --allow-fewer-devices every whole number of nodes
// and every divisor of one node's devices.
std::vector<int64_t> searched_device_counts(const SearchRequest& r) {
  if (!r.allow_fewer_devices) return {r.devices};
  std::vector<int64_t> counts;
  for (int64_t d = 1; d < std::min(r.devices_per_node, r.devices); ++d)
    if (r.devices_per_node % d == 0) counts.push_back(d);
  for (int64_t d = std::min(r.devices_per_node, r.devices); d <= r.devices; d += r.devices_per_node) counts.push_back(d);
  return counts;
}

std::vector<int64_t> proper_divisors(int64_t n) {
  std::vector<int64_t> out;
  for (int64_t d = 1; d < n; ++d)
    if (n % d == 0) out.push_back(d);
  return out;
}

// The knobs below tp and pp, in the order the space is walked.
struct InnerChoice {
  int32_t micro_batch_size = 1;
  int32_t layers_per_virtual_stage = 0;
  core::Schedule schedule = core::Schedule::one_f_one_b;
  core::Recompute recompute = core::Recompute::none;
  bool sequence_parallel = false;
  bool distributed_optimizer = false;
  bool overlap_grad_reduce = false;
  bool overlap_param_gather = false;
  bool tp_comm_overlap = false;
};

// What the rules that ignore devices and batch say about every inner choice of one (tp, pp).
struct SplitVerdict {
  RuleCounts rejected{};
  std::vector<InnerChoice> passing;
};

// A choice of the other knobs to try with uneven splits, and its virtual stages per rank.
struct UnevenSource {
  InnerChoice choice;  // layers_per_virtual_stage 0
  int64_t virtual_stages = 1;
};

bool is_split_rule(core::PlanRule rule) {
  return rule < core::PlanRule::devices_divisible_by_model_parallel;
}

class SpaceWalk {
 public:
  SpaceWalk(const SearchRequest& request, RejectCounts& rejects, int64_t& combinations, std::vector<Candidate>& valid)
      : request_(request), rejects_(rejects), combinations_(combinations), valid_(valid),
        layers_(request.model.num_layers), plan_(make_plan(Candidate{}, request)), probe_(plan_), guide_(request) {
    // The probe stands for one replica on one node: a mixed cluster's groups would not summarise it.
    probe_.cluster.groups.clear();
    for (int64_t b = 1; b <= request.max_micro_batch_size; b *= 2) micro_batches_.push_back(int32_t(b));
    choices_up_to_.assign(size_t(layers_) + 1, 0);
    divisors_up_to_.assign(size_t(layers_) + 1, 0);
    for (int64_t pp = 1; pp <= layers_; ++pp) {
      choices_up_to_[size_t(pp)] = choices_up_to_[size_t(pp - 1)] + int64_t(inner_choices(pp).size());
      divisors_up_to_[size_t(pp)] = divisors_up_to_[size_t(pp - 1)] + (layers_ % pp == 0 ? 1 : 0);
      if (layers_ % pp == 0) layer_divisors_.push_back(pp);
    }
    // The tensor sizes that do not fail on the model's heads: the divisors of the heads and
    // those failing before (too large); found once for every tp any device count allows.
    const int64_t most_tp = request.allow_cross_node_tp ? request.devices : std::min(request.devices, request.devices_per_node);
    for (int64_t tp = 1; tp <= std::min(most_tp, core::limits::kMaxTensorParallel); ++tp) {
      const std::optional<core::PlanRule> rule = tensor_rule(tp);
      if (rule != core::PlanRule::heads_divisible_by_tp) not_heads_rule_.push_back({tp, rule});
    }
  }

  void walk(int64_t devices) {
    const int64_t max_tp = request_.allow_cross_node_tp ? devices : std::min(devices, request_.devices_per_node);
    const int64_t first_too_large = core::limits::kMaxTensorParallel + 1;
    const std::optional<int64_t> all = combinations_between(devices, 1, max_tp);
    const std::optional<int64_t> total = all ? core::checked_add(combinations_, *all) : std::nullopt;
    if (!total)
      throw InvalidInput("the search space of --devices={} holds more combinations than Loom can count (int64); narrow "
                         "it: without --allow-fewer-devices or --allow-cross-node-tp",
                         request_.devices);
    combinations_ = *total;
    // Too large a tp fails first; every other tp not dividing the heads fails on the heads. (Sums
    // over part of the tensor sizes are at most `all`: they fit.)
    int64_t heads = *combinations_between(devices, 1, std::min(max_tp, core::limits::kMaxTensorParallel));
    if (max_tp >= first_too_large)
      rejects_.by_rule[size_t(core::PlanRule::positive_sizes)] += *combinations_between(devices, first_too_large, max_tp);
    for (const auto& [tp, rule] : not_heads_rule_) {
      if (tp > max_tp) break;
      const int64_t here = choices_up_to_[size_t(std::min(layers_, devices / tp))];
      heads -= here;
      if (rule) rejects_.by_rule[size_t(*rule)] += here;
      else walk_tensor_split(devices, tp);
    }
    rejects_.by_rule[size_t(core::PlanRule::heads_divisible_by_tp)] += heads;
  }

 private:
  // Σ over tp in [lo, hi] of the combinations under (devices, tp), pp running to
  // min(layers, devices/tp): tensor sizes with the same devices/tp are summed at once. Nothing
  // when the sum passes int64.
  std::optional<int64_t> combinations_between(int64_t devices, int64_t lo, int64_t hi) const {
    int64_t sum = 0;
    // Up to devices/layers every tp leaves room for every pp: one block.
    const int64_t whole = std::min(hi, devices / layers_);
    if (whole >= lo) {
      const std::optional<int64_t> block = core::checked_multiply(whole - lo + 1, choices_up_to_[size_t(layers_)]);
      if (!block) return std::nullopt;
      sum = *block;
      lo = whole + 1;
    }
    for (int64_t tp = lo; tp <= hi;) {
      const int64_t quotient = devices / tp;
      const int64_t last = std::min(hi, devices / quotient);  // the last tp with the same quotient
      const std::optional<int64_t> block =
          core::checked_multiply(last - tp + 1, choices_up_to_[size_t(std::min(layers_, quotient))]);
      const std::optional<int64_t> next = block ? core::checked_add(sum, *block) : std::nullopt;
      if (!next) return std::nullopt;
      sum = *next;
      tp = last + 1;
    }
    return sum;
  }

  std::vector<InnerChoice> inner_choices(int64_t pp) const {
    // Interleaving choices: none, or any layers-per-virtual-stage dividing the stage.
    std::vector<std::pair<core::Schedule, int64_t>> schedules = {{core::Schedule::gpipe, 0},
                                                                 {core::Schedule::one_f_one_b, 0}};
    if (layers_ % pp == 0)
      for (int64_t per_virtual : proper_divisors(layers_ / pp)) schedules.push_back({core::Schedule::interleaved, per_virtual});
    std::vector<InnerChoice> out;
    for (int32_t micro_batch : micro_batches_)
      for (const auto& [schedule, per_virtual] : schedules)
        for (core::Recompute recompute : kWalkedRecomputes)
          for (bool sp : {false, true})
            for (bool distributed : {false, true})
              for (bool grad_reduce : {false, true})
                for (bool param_gather : {false, true})
                  for (bool tp_overlap : {false, true})
                    out.push_back({micro_batch, int32_t(per_virtual), schedule, recompute, sp, distributed, grad_reduce,
                                   param_gather, tp_overlap});
    return out;
  }

  // The split rules' verdict on one choice: the plan is given exactly tp·pp devices and a batch
  // of pp microbatches, which every device and batch rule accepts.
  // With `uneven_virtual_stages`, the choice is asked with the lexicographically first uneven
  // split of the layers over pp × that many stages ([0, 1, …, 1, rest]).
  std::optional<core::PlanRule> split_rule(int64_t tp, int64_t pp, const InnerChoice& c,
                                           int64_t uneven_virtual_stages = 0) {
    LayerSplit split;
    if (uneven_virtual_stages > 0) split = {SplitForm::composition, uint8_t(uneven_virtual_stages), 0, 0, {}};
    apply(Candidate{1, int32_t(tp), int32_t(pp), 1, c.micro_batch_size, c.layers_per_virtual_stage, c.schedule,
                    c.recompute, c.sequence_parallel, c.distributed_optimizer, c.overlap_grad_reduce,
                    c.overlap_param_gather, c.tp_comm_overlap, split},
          request_, probe_);
    probe_.cluster.nodes = 1;
    probe_.cluster.devices_per_node = tp * pp;
    probe_.parallel.data_parallel = 1;
    probe_.training.global_batch_size = int64_t(c.micro_batch_size) * pp;
    const std::optional<core::PlanRule> rule = probe_.violated_rule();
    if (rule && !is_split_rule(*rule)) throw std::logic_error("plan search: a device rule failed on a probe");
    return rule;
  }

  std::optional<core::PlanRule> tensor_rule(int64_t tp) { return split_rule(tp, 1, InnerChoice{}); }

  const SplitVerdict& verdict(int64_t tp, int64_t pp) {
    auto [it, added] = verdicts_.try_emplace({tp, pp});
    if (added)
      for (const InnerChoice& c : inner_choices(pp)) {
        if (const auto rule = split_rule(tp, pp, c)) ++it->second.rejected[size_t(*rule)];
        else it->second.passing.push_back(c);
      }
    return it->second;
  }

  void walk_tensor_split(int64_t devices, int64_t tp) {
    const int64_t most_pp = std::min(layers_, devices / tp);
    // Every pp that does not divide the layers fails the same way (on sequence parallelism, or
    // on the layers): one such pp stands for all.
    const int64_t non_divisors = most_pp - divisors_up_to_[size_t(most_pp)];
    if (non_divisors > 0) {
      const int64_t representative = std::max<int64_t>(2, layers_ - 1);  // L − 1 ∤ L for L ≥ 3
      const SplitVerdict& v = verdict(tp, representative);
      for (size_t rule = 0; rule < v.rejected.size(); ++rule) rejects_.by_rule[rule] += non_divisors * v.rejected[rule];
    }
    for (int64_t pp : layer_divisors_) {
      if (pp > most_pp) break;
      walk_pipeline_split(devices, tp, pp);
    }
    if (request_.search_layer_splits)
      for (int64_t pp = 2; pp <= most_pp; ++pp)
        if (layers_ % pp != 0) walk_uneven_splits(devices, tp, pp);
  }

  // Virtual stages per rank tried with uneven splits: those that split a rank's share of the
  // layers (rounded down or up) evenly, so that the split stays near the even one.
  std::vector<int64_t> uneven_virtual_stages(int64_t pp) const {
    std::vector<int64_t> out;
    const int64_t low = layers_ / pp, high = (layers_ + pp - 1) / pp;
    for (int64_t v = 2; v <= std::min<int64_t>(high, 255) && pp * v <= layers_; ++v)
      if (low % v == 0 || high % v == 0) out.push_back(v);
    return out;
  }

  // The choices of the other knobs that pass the rules about the model's split with an uneven
  // split of the layers over pp (and v) stages: what Plan::violated_rule says with a sample split.
  const std::vector<UnevenSource>& uneven_sources(int64_t tp, int64_t pp) {
    auto [it, added] = uneven_sources_.try_emplace({tp, pp});
    if (!added) return it->second;
    std::vector<int64_t> virtual_stages = {1};
    for (int64_t v : uneven_virtual_stages(pp)) virtual_stages.push_back(v);
    for (const InnerChoice& base : inner_choices(pp)) {
      if (base.schedule == core::Schedule::interleaved) continue;  // added below, for each v
      const std::vector<core::Schedule> schedules =
          base.schedule == core::Schedule::one_f_one_b
              ? std::vector<core::Schedule>{core::Schedule::one_f_one_b, core::Schedule::interleaved}
              : std::vector<core::Schedule>{core::Schedule::gpipe};
      for (core::Schedule schedule : schedules)
        for (int64_t v : virtual_stages) {
          if ((schedule == core::Schedule::interleaved) != (v > 1)) continue;
          InnerChoice c = base;
          c.schedule = schedule;
          if (!split_rule(tp, pp, c, v)) it->second.push_back({c, v});
        }
    }
    return it->second;
  }

  // Only the uneven splits of a pp that does not divide the layers (its even split was counted).
  void walk_uneven_splits(int64_t devices, int64_t tp, int64_t pp) {
    if (devices % (tp * pp) != 0) return;
    const int64_t dp = devices / (tp * pp);
    if (request_.training.global_batch_size % dp != 0) return;
    emit_uneven_splits(devices, tp, pp, dp);
  }

  void emit_uneven_splits(int64_t devices, int64_t tp, int64_t pp, int64_t dp) {
    // On a mixed cluster every split of a tp × dp that straddles a group breaks the same rule as
    // its even split, which counted it.
    for (const core::DeviceGroup& group : request_.groups)
      if (group.devices() % (tp * dp) != 0) return;
    for (const UnevenSource& source : uneven_sources(tp, pp)) {
      const InnerChoice& c = source.choice;
      Candidate candidate{int32_t(devices),        int32_t(tp),           int32_t(pp),
                          int32_t(dp),             c.micro_batch_size,    0,
                          c.schedule,              c.recompute,           c.sequence_parallel,
                          c.distributed_optimizer, c.overlap_grad_reduce, c.overlap_param_gather,
                          c.tp_comm_overlap,       {}};
      for (const LayerSplit& split : guide_.splits(candidate, source.virtual_stages)) {
        candidate.split = split;
        ++combinations_;
        check_and_keep(candidate);
      }
    }
  }

  void walk_pipeline_split(int64_t devices, int64_t tp, int64_t pp) {
    const SplitVerdict& v = verdict(tp, pp);
    for (size_t rule = 0; rule < v.rejected.size(); ++rule) rejects_.by_rule[rule] += v.rejected[rule];
    const int64_t passing = int64_t(v.passing.size());
    if (devices % (tp * pp) != 0) {
      rejects_.by_rule[size_t(core::PlanRule::devices_divisible_by_model_parallel)] += passing;
      return;
    }
    const int64_t dp = devices / (tp * pp);
    const int64_t batch = request_.training.global_batch_size;
    if (batch % dp != 0) {  // then no micro-batch size splits the batch either
      rejects_.by_rule[size_t(core::PlanRule::batch_divisible)] += passing;
      return;
    }
    for (const InnerChoice& c : v.passing) {
      const Candidate candidate{int32_t(devices),           int32_t(tp),         int32_t(pp),
                                int32_t(dp),                c.micro_batch_size,  c.layers_per_virtual_stage,
                                c.schedule,                 c.recompute,         c.sequence_parallel,
                                c.distributed_optimizer,    c.overlap_grad_reduce, c.overlap_param_gather,
                                c.tp_comm_overlap,          {}};
      check_and_keep(candidate);
    }
    if (request_.search_layer_splits && pp >= 2) emit_uneven_splits(devices, tp, pp, dp);
  }

  // Keeps the candidate if every rule and the planner's own skips pass it; else counts why not.
  void check_and_keep(const Candidate& candidate) {
    const int64_t dp = candidate.data_parallel, pp = candidate.pipeline_parallel;
    apply(candidate, request_, plan_);
    if (const auto rule = plan_.violated_rule()) {
      ++rejects_.by_rule[size_t(*rule)];
      return;
    }
    if (candidate.distributed_optimizer && dp == 1) {
      ++rejects_.distributed_optimizer_without_dp;
      return;
    }
    if (candidate.overlap_grad_reduce && dp == 1) {
      ++rejects_.overlap_without_dp;
      return;
    }
    if (candidate.schedule == core::Schedule::gpipe && pp == 1) {
      ++rejects_.gpipe_without_pipeline;
      return;
    }
    if (pp * plan_.virtual_stages() * plan_.microbatches() > core::limits::kMaxSimulatedStageMicrobatches) {
      ++rejects_.too_large_to_simulate;
      return;
    }
    if (int64_t(valid_.size()) >= core::limits::kMaxSearchCandidates)
      throw InvalidInput("the search space of --devices={}{} holds more than the {} valid plans Loom searches at once; "
                         "narrow it: fewer --devices, without --allow-fewer-devices, a smaller "
                         "--max-micro-batch-size, or --even-splits-only",
                         request_.devices, request_.allow_fewer_devices ? " with --allow-fewer-devices" : "",
                         core::limits::kMaxSearchCandidates);
    valid_.push_back(candidate);
  }

  const SearchRequest& request_;
  RejectCounts& rejects_;
  int64_t& combinations_;
  std::vector<Candidate>& valid_;
  const int64_t layers_;
  core::Plan plan_;   // rewritten for each candidate
  core::Plan probe_;  // rewritten for each split rule asked
  std::vector<int32_t> micro_batches_;
  std::vector<int64_t> choices_up_to_;   // [P]: inner choices of every pp in [1, P]
  std::vector<int64_t> divisors_up_to_;  // [P]: divisors of the layers in [1, P]
  std::vector<int64_t> layer_divisors_;  // ascending
  std::vector<std::pair<int64_t, std::optional<core::PlanRule>>> not_heads_rule_;  // ascending tp
  std::map<std::pair<int64_t, int64_t>, SplitVerdict> verdicts_;
  std::map<std::pair<int64_t, int64_t>, std::vector<UnevenSource>> uneven_sources_;
  SplitGuide guide_;
};

}  // namespace

std::vector<Candidate> enumerate_candidates(const SearchRequest& request, RejectCounts& rejects, int64_t& combinations,
                                            const std::function<void(double)>& progress,
                                            const std::function<bool()>& cancelled) {
  std::vector<Candidate> valid;
  combinations = 0;
  SpaceWalk walk(request, rejects, combinations, valid);
  const std::vector<int64_t> counts = searched_device_counts(request);
  for (size_t i = 0; i < counts.size(); ++i) {
    if (cancelled && i % 64 == 0 && cancelled()) throw Cancelled("the search was cancelled");
    walk.walk(counts[i]);
    if (progress && i % 64 == 0) progress(double(i) / double(counts.size()));
  }
  return valid;
}

}  // namespace loom::plan
