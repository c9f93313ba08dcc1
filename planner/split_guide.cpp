#include "planner/split_guide.hpp"

#include "simulator/step_costs.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace loom::plan {
namespace {

double total_s(const sim::OpsTime& t) { return t.compute_s + t.comm_s; }

bool all_equal(const std::vector<int64_t>& counts) {
  return std::all_of(counts.begin(), counts.end(), [&](int64_t c) { return c == counts.front(); });
}

int16_t clamp16(double value, int64_t lo, int64_t hi) {
  return int16_t(std::clamp<int64_t>(int64_t(std::llround(value)), lo, hi));
}

}  // namespace

SplitGuide::SplitGuide(const SearchRequest& request) : request_(request), probe_(make_plan(Candidate{}, request)) {
  if (request.groups.empty()) {
    group_costs_.push_back(std::make_unique<sim::CostModel>(request.profile, request.training.dtype, request.devices_per_node));
  } else {
    for (size_t g = 0; g < request.groups.size(); ++g) {
      const core::Profile& profile = g < request.group_profiles.size() ? request.group_profiles[g] : request.profile;
      group_costs_.push_back(std::make_unique<sim::CostModel>(profile, request.training.dtype, request.devices_per_node));
    }
  }
}

const SplitGuide::StageCosts& SplitGuide::costs_of(const Candidate& c, int64_t group) {
  const auto key = std::make_tuple(c.tensor_parallel, c.micro_batch_size, int(c.recompute), c.sequence_parallel,
                                   c.tp_comm_overlap, group);
  auto it = stage_costs_.find(key);
  if (it != stage_costs_.end()) return it->second;
  Candidate shape = c;
  shape.split = LayerSplit{};
  apply(shape, request_, probe_);
  const sim::LayerCosts layer = sim::layer_costs(probe_, *group_costs_[size_t(group)]);
  StageCosts costs;
  costs.layer_s = total_s(layer.layer_forward) + total_s(layer.layer_backward) + total_s(layer.layer_recompute);
  costs.embedding_s = total_s(layer.embedding_forward) + total_s(layer.embedding_backward);
  costs.output_s = total_s(layer.output_forward) + total_s(layer.output_backward);
  // A profile that gives a layer no time would make every split look balanced: count layers.
  if (!(costs.layer_s > 0)) costs = {1.0, 0.0, 0.0};
  return stage_costs_.emplace(key, costs).first->second;
}

const std::vector<LayerSplit>& SplitGuide::splits(const Candidate& c, int64_t virtual_stages) {
  const int64_t stage_ranks = request_.groups.empty() ? 0 : int64_t(c.tensor_parallel) * c.data_parallel;
  const auto key = std::make_tuple(c.tensor_parallel, c.pipeline_parallel, virtual_stages, c.micro_batch_size,
                                   int(c.recompute), c.sequence_parallel, c.tp_comm_overlap, stage_ranks);
  auto it = splits_.find(key);
  if (it != splits_.end()) return it->second;
  std::vector<LayerSplit> out;
  const int64_t layers = request_.model.num_layers, pp = c.pipeline_parallel;
  const int64_t stages = pp * virtual_stages;
  if (pp >= 2 && stages <= layers + 2) {
    if (const std::optional<int64_t> count = split_count(layers, stages, kAllSplitsUpTo)) {
      // Small: every split (but the even one, a candidate of its own).
      for (int64_t i = 0; i < *count; ++i) {
        const LayerSplit split{SplitForm::composition, uint8_t(virtual_stages), int16_t(i), 0, {}};
        write_layer_split(split, layers, pp, {}, scratch_);
        if (!all_equal(scratch_)) out.push_back(split);
      }
    } else {
      out = guided(c, virtual_stages, rank_groups_of(request_.groups, pp, stage_ranks));
    }
  }
  return splits_.emplace(key, std::move(out)).first->second;
}

std::vector<LayerSplit> SplitGuide::guided(const Candidate& c, int64_t v, const std::vector<int64_t>& rank_groups) {
  const int64_t layers = request_.model.num_layers, pp = c.pipeline_parallel;
  const int64_t stages = pp * v;
  const int64_t groups = rank_groups.back() + 1;
  const bool per_group = groups >= 2 && groups <= kMaxSplitGroups;

  // Where every pipeline rank would take the same time, layers being divisible: rank r holds
  // (T − its embedding or loss) / (its layer time) layers, summing to the model's.
  std::vector<double> layer_s(static_cast<size_t>(pp));
  double speed = 0;
  for (int64_t r = 0; r < pp; ++r) {
    layer_s[size_t(r)] = costs_of(c, rank_groups[size_t(r)]).layer_s;
    speed += 1.0 / layer_s[size_t(r)];
  }
  const double embedding_s = costs_of(c, rank_groups.front()).embedding_s;
  const double output_s = costs_of(c, rank_groups.back()).output_s;
  const double balanced_s =
      (double(layers) + embedding_s / layer_s.front() + output_s / layer_s.back()) / speed;
  // The first and last virtual stages give up (or take) the whole difference of their ranks.
  const double first = balanced_s / layer_s.front() / double(v) - embedding_s / layer_s.front();
  const double last = balanced_s / layer_s.back() / double(v) - output_s / layer_s.back();
  std::vector<double> group_target(size_t(groups), 0.0);
  std::vector<int64_t> group_stages(size_t(groups), 0);
  for (int64_t s = 1; s + 1 < stages; ++s) {
    const int64_t r = s % pp;
    group_target[size_t(rank_groups[size_t(r)])] += balanced_s / layer_s[size_t(r)] / double(v);
    ++group_stages[size_t(rank_groups[size_t(r)])];
  }

  struct Option {
    double bottleneck_s, total_s, worst_stage_s;
    LayerSplit split;
    std::vector<int64_t> counts;
  };
  std::vector<Option> options;
  LayerSplit split{SplitForm::ends, uint8_t(v), 0, 0, {}};
  std::vector<double> rank_s(static_cast<size_t>(pp));
  auto consider = [&] {
    // Valid counts only: ends within the layers, every middle stage at least one layer.
    const int64_t middle = layers - split.first - split.last;
    if (split.first < 0 || split.last < 0 || middle < 0) return;
    if (stages == 2 && middle != 0) return;
    if (stages > 2) {
      if (middle < stages - 2) return;
      if (per_group) {
        int64_t left = middle;
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t total = g + 1 < groups ? split.group_layers[size_t(g)] : left;
          if (total < group_stages[size_t(g)] || (group_stages[size_t(g)] == 0 && total != 0)) return;
          left -= total;
        }
      }
    }
    write_layer_split(split, layers, pp, rank_groups, scratch_);
    if (all_equal(scratch_)) return;
    std::fill(rank_s.begin(), rank_s.end(), 0.0);
    double worst_stage_s = 0;
    for (int64_t s = 0; s < stages; ++s) {
      const int64_t r = s % pp;
      double stage_s = double(scratch_[size_t(s)]) * layer_s[size_t(r)];
      if (s == 0) stage_s += embedding_s;
      if (s == stages - 1) stage_s += output_s;
      rank_s[size_t(r)] += stage_s;
      worst_stage_s = std::max(worst_stage_s, stage_s);
    }
    double bottleneck_s = 0, total_s = 0;
    for (double t : rank_s) {
      bottleneck_s = std::max(bottleneck_s, t);
      total_s += t;
    }
    for (const Option& o : options)
      if (o.counts == scratch_) return;
    options.push_back({bottleneck_s, total_s, worst_stage_s, split, scratch_});
  };

  // A window of ±1 layer around the balanced point (±2 for the first stage of a two-stage split,
  // whose last stage takes the rest), and around each group's share.
  const int16_t first0 = clamp16(first, 0, layers), last0 = clamp16(last, 0, layers);
  std::array<int16_t, kMaxSplitGroups - 1> group0{};
  if (per_group)
    for (int64_t g = 0; g + 1 < groups; ++g) group0[size_t(g)] = clamp16(group_target[size_t(g)], 0, layers);
  const int reach = stages == 2 ? 2 : 1;
  const int64_t varied_groups = per_group ? groups - 1 : 0;
  int64_t group_steps = 1;
  for (int64_t g = 0; g < varied_groups; ++g) group_steps *= 3;
  for (int df = -reach; df <= reach; ++df)
    for (int de = stages == 2 ? 0 : -1; de <= (stages == 2 ? 0 : 1); ++de)
      for (int64_t step = 0; step < group_steps; ++step) {
        split.first = int16_t(first0 + df);
        split.last = stages == 2 ? int16_t(layers - split.first) : int16_t(last0 + de);
        int64_t digits = step;
        for (int64_t g = 0; g < varied_groups; ++g, digits /= 3)
          split.group_layers[size_t(g)] = int16_t(group0[size_t(g)] + digits % 3 - 1);
        consider();
      }

  std::sort(options.begin(), options.end(), [](const Option& a, const Option& b) {
    return std::tie(a.bottleneck_s, a.total_s, a.worst_stage_s, a.counts) <
           std::tie(b.bottleneck_s, b.total_s, b.worst_stage_s, b.counts);
  });
  std::vector<LayerSplit> out;
  for (size_t i = 0; i < options.size() && i < size_t(kGuidedSplits); ++i) out.push_back(options[i].split);
  return out;
}

}  // namespace loom::plan
