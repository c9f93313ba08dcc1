#pragma once
// Megatron-LM's rules for the layers of each pipeline stage (uneven splits included), for
// core/plan.cpp's check of the whole plan only: a template so that the planner's question (which
// rule failed?) pays for no message. Not part of core's interface.

#include "core/error.hpp"
#include "core/limits.hpp"
#include "core/plan.hpp"

#include <fmt/ranges.h>

#include <string>

namespace loom::core::detail {

// Megatron-LM's rules for splitting the layers over pipeline ranks and their virtual chunks
// (megatron/training/arguments.py, megatron/core/transformer/transformer_block.py), and Loom's
// general pipeline-layer-split. Every way of saying the split is checked here, so that
// Plan::virtual_stage_layers can assume a valid one.
template <typename Fail>
bool check_pipeline_split(const Plan& plan, Fail&& fail) {
  const ParallelPlan& p = plan.parallel;
  const int64_t layers = plan.model.num_layers;
  const int64_t pp = p.pipeline_parallel;
  const bool interleaved = p.schedule == Schedule::interleaved;
  const bool split = !p.pipeline_layer_split.empty();
  const bool first_last = p.first_stage_layers || p.last_stage_layers;
  const bool accounts = p.account_for_embedding || p.account_for_loss;
  const int64_t accounted = layers + int64_t(p.account_for_embedding) + int64_t(p.account_for_loss);
  const auto accounted_text = [&] {
    return fmt::format("num-layers={}{}{}", layers, p.account_for_embedding ? " + 1 (the embedding)" : "",
                       p.account_for_loss ? " + 1 (the loss)" : "");
  };

  if (split && (first_last || accounts))
    return fail(PlanRule::layer_split_conflict, [&] {
      return fmt::format("pipeline-layer-split={} gives every stage's layers and cannot be combined with {}; "
                         "remove one",
                         p.pipeline_layer_split,
                         first_last ? "decoder-first/last-pipeline-num-layers"
                                    : "account-for-embedding/loss-in-pipeline-split");
    });
  if (first_last && accounts)
    return fail(PlanRule::layer_split_conflict, [&] {
      return std::string("decoder-first/last-pipeline-num-layers cannot be combined with "
                         "account-for-embedding/loss-in-pipeline-split (Megatron-LM refuses both); remove one");
    });
  if (!interleaved && (p.layers_per_virtual_stage || p.virtual_stages_per_rank))
    return fail(PlanRule::virtual_stages_need_interleaved, [&] {
      return p.layers_per_virtual_stage
                 ? fmt::format("num-layers-per-virtual-pipeline-stage={} is only used with schedule=interleaved "
                               "(schedule is {})",
                               *p.layers_per_virtual_stage, to_string(p.schedule))
                 : fmt::format("num-virtual-stages-per-pipeline-rank={} is only used with schedule=interleaved "
                               "(schedule is {})",
                               *p.virtual_stages_per_rank, to_string(p.schedule));
    });
  if (p.layers_per_virtual_stage && p.virtual_stages_per_rank)
    return fail(PlanRule::virtual_stages_conflict, [&] {
      return fmt::format("num-layers-per-virtual-pipeline-stage={} and num-virtual-stages-per-pipeline-rank={} "
                         "both give the virtual stages; give one",
                         *p.layers_per_virtual_stage, *p.virtual_stages_per_rank);
    });
  if (split && p.layers_per_virtual_stage)
    return fail(PlanRule::virtual_stages_conflict, [&] {
      return fmt::format("num-layers-per-virtual-pipeline-stage={} cannot be used with pipeline-layer-split, which "
                         "gives each virtual stage's layers (pipeline-model-parallel-size × virtual stages "
                         "entries); remove it",
                         *p.layers_per_virtual_stage);
    });
  if (first_last && p.layers_per_virtual_stage)
    return fail(PlanRule::virtual_stages_conflict, [&] {
      return std::string("decoder-first/last-pipeline-num-layers with schedule=interleaved needs "
                         "num-virtual-stages-per-pipeline-rank, not num-layers-per-virtual-pipeline-stage "
                         "(as Megatron-LM)");
    });
  if (first_last && pp < 2)
    return fail(PlanRule::uneven_split_needs_pp, [&] {
      return fmt::format("decoder-first/last-pipeline-num-layers need pipeline-model-parallel-size > 1 (it is {})",
                         pp);
    });

  // The virtual stages per pipeline rank.
  int64_t v = 1;
  if (interleaved) {
    if (pp < 2)
      return fail(PlanRule::interleaved_needs_pp, [&] {
        return fmt::format("schedule=interleaved needs pipeline-model-parallel-size > 1 (it is {})", pp);
      });
    if (split) {
      if (int64_t(p.pipeline_layer_split.size()) % pp != 0)
        return fail(PlanRule::layer_split_length, [&] {
          return fmt::format("pipeline-layer-split has {} entries; with schedule=interleaved it lists every virtual "
                             "stage: pipeline-model-parallel-size={} × the virtual stages per rank",
                             p.pipeline_layer_split.size(), pp);
        });
      v = int64_t(p.pipeline_layer_split.size()) / pp;
      if (p.virtual_stages_per_rank && *p.virtual_stages_per_rank != v)
        return fail(PlanRule::layer_split_length, [&] {
          return fmt::format("pipeline-layer-split has {} entries, {} virtual stages per rank with "
                             "pipeline-model-parallel-size={}, but num-virtual-stages-per-pipeline-rank={}",
                             p.pipeline_layer_split.size(), v, pp, *p.virtual_stages_per_rank);
        });
    } else if (p.virtual_stages_per_rank) {
      v = *p.virtual_stages_per_rank;
      if (v <= 0 || v > limits::kMaxLayers)
        return fail(PlanRule::virtual_stage_divides_stage, [&] {
          return fmt::format("num-virtual-stages-per-pipeline-rank={} must be an integer from 2 to the layers per "
                             "pipeline stage",
                             v);
        });
    } else if (p.layers_per_virtual_stage) {
      if (accounted % pp != 0)
        return fail(accounts ? PlanRule::uneven_layers_not_divisible : PlanRule::layers_divisible_by_pp, [&] {
          return accounts ? fmt::format("{} = {} is not divisible by pipeline-model-parallel-size={}",
                                        accounted_text(), accounted, pp)
                          : fmt::format("pipeline-model-parallel-size={} does not divide num-layers={}", pp, layers);
        });
      const int64_t per_stage = accounted / pp;
      const int64_t per_virtual = *p.layers_per_virtual_stage;
      if (per_virtual <= 0 || per_stage % per_virtual != 0)
        return fail(PlanRule::virtual_stage_divides_stage, [&] {
          return fmt::format("num-layers-per-virtual-pipeline-stage={} does not divide the {} layers per pipeline "
                             "stage ({} / pipeline-model-parallel-size={})",
                             per_virtual, per_stage, accounts ? accounted_text() : fmt::format("num-layers={}", layers),
                             pp);
        });
      v = per_stage / per_virtual;
    } else {
      return fail(PlanRule::interleaved_needs_virtual_stages, [&] {
        return std::string("schedule=interleaved needs num-layers-per-virtual-pipeline-stage, "
                           "num-virtual-stages-per-pipeline-rank, or a pipeline-layer-split listing every virtual "
                           "stage");
      });
    }
    if (v < 2)
      return fail(PlanRule::interleaved_needs_two_virtual_stages, [&] {
        if (p.layers_per_virtual_stage)
          return fmt::format("num-layers-per-virtual-pipeline-stage={} leaves 1 virtual stage per pipeline rank; "
                             "schedule=interleaved needs at least 2 (use a value below {} or schedule=1f1b)",
                             *p.layers_per_virtual_stage, accounted / pp);
        return fmt::format("schedule=interleaved needs at least 2 virtual stages per pipeline rank (this plan has "
                           "{}); use schedule=1f1b",
                           v);
      });
  } else if (split && int64_t(p.pipeline_layer_split.size()) != pp) {
    return fail(PlanRule::layer_split_length, [&] {
      return fmt::format("pipeline-layer-split has {} entries; expected one per pipeline stage "
                         "(pipeline-model-parallel-size={})",
                         p.pipeline_layer_split.size(), pp);
    });
  }

  if (split) {
    const std::vector<int64_t>& counts = p.pipeline_layer_split;
    int64_t sum = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      const bool end_stage = i == 0 || i + 1 == counts.size();
      if (counts[i] < 0 || counts[i] > layers || (counts[i] == 0 && !end_stage))
        return fail(PlanRule::layer_split_counts, [&] {
          return fmt::format("pipeline-layer-split[{}]={} must be from {} to num-layers={} (only the first and the "
                             "last virtual stage, which hold the embedding and the loss, may have no layers)",
                             i, counts[i], end_stage ? 0 : 1, layers);
        });
      sum += counts[i];  // each at most kMaxLayers, at most kMaxLayers² · ... entries: no overflow
    }
    if (sum != layers)
      return fail(PlanRule::layer_split_counts, [&] {
        return fmt::format("pipeline-layer-split={} sums to {} layers; it must sum to num-layers={}", counts, sum,
                           layers);
      });
    return true;
  }
  if (first_last) {
    const int64_t first = p.first_stage_layers.value_or(0), last = p.last_stage_layers.value_or(0);
    // Not a structured binding: clang (the fuzz build) cannot capture one in the message's lambda.
    for (const auto& given : {std::pair{p.first_stage_layers, "decoder-first-pipeline-num-layers"},
                              std::pair{p.last_stage_layers, "decoder-last-pipeline-num-layers"}})
      if (given.first && (*given.first < 1 || *given.first > layers))
        return fail(PlanRule::layer_split_counts, [&] {
          return fmt::format("{}={} must be from 1 to num-layers={}", given.second, *given.first, layers);
        });
    const int64_t rest = layers - first - last;
    const int64_t rest_ranks = pp - int64_t(bool(p.first_stage_layers)) - int64_t(bool(p.last_stage_layers));
    if (rest < 0 || (rest_ranks == 0 && rest != 0))
      return fail(PlanRule::layer_split_counts, [&] {
        return fmt::format("decoder-first/last-pipeline-num-layers ({} and {}) leave {} of num-layers={} for the "
                           "other {} pipeline stage(s)",
                           first, last, rest, layers, rest_ranks);
      });
    if (rest_ranks > 0 && (rest % rest_ranks != 0 || rest / rest_ranks == 0))
      return fail(rest % rest_ranks != 0 ? PlanRule::uneven_layers_not_divisible : PlanRule::layer_split_counts, [&] {
        return fmt::format("the {} layers left by decoder-first/last-pipeline-num-layers {} over the other {} "
                           "pipeline stage(s) (each needs the same number, at least 1)",
                           rest, rest % rest_ranks != 0 ? "do not split evenly" : "are too few", rest_ranks);
      });
    const int64_t middle = rest_ranks > 0 ? rest / rest_ranks : 0;
    if (v > 1 && (first % v != 0 || last % v != 0 || middle % v != 0))
      return fail(PlanRule::uneven_layers_not_divisible, [&] {
        return fmt::format("with {} virtual stages per pipeline rank each rank's layers must split evenly over them: "
                           "first stage {}, last stage {}, the others {} each",
                           v, first, last, middle);
      });
    return true;
  }
  if (accounts) {
    if (accounted % (pp * v) != 0)
      return fail(PlanRule::uneven_layers_not_divisible, [&] {
        return fmt::format("{} = {} is not divisible by pipeline-model-parallel-size={}{}", accounted_text(),
                           accounted, pp, v > 1 ? fmt::format(" × {} virtual stages", v) : std::string());
      });
    return true;
  }
  if (layers % pp != 0)
    return fail(PlanRule::layers_divisible_by_pp, [&] {
      return fmt::format("pipeline-model-parallel-size={} does not divide num-layers={}", pp, layers);
    });
  if (v > 1 && (layers / pp) % v != 0)
    return fail(PlanRule::virtual_stage_divides_stage, [&] {
      return fmt::format("num-virtual-stages-per-pipeline-rank={} does not divide the {} layers per pipeline stage "
                         "(num-layers={} / pipeline-model-parallel-size={})",
                         v, layers / pp, layers, pp);
    });
  return true;
}

}  // namespace loom::core::detail
