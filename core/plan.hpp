#pragma once
// Plan: the hand-off document (plan.json) that bundles what is trained, how, on what, and how it
// is split. The planner writes it, `loom show` explains it, the executor runs it.

#include "core/cluster_spec.hpp"
#include "core/model_spec.hpp"
#include "core/parallel_plan.hpp"
#include "core/train_spec.hpp"
#include "core/vocabulary.hpp"

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace loom::core {

// Megatron-LM's rules across the parts of a plan, in the order they are checked.
enum class PlanRule : uint8_t {
  positive_sizes,
  heads_divisible_by_tp,
  query_groups_divisible_by_tp,
  ffn_divisible_by_tp,
  vocab_divisible_by_tp,
  sequence_parallel_needs_tp,
  seq_length_divisible_by_tp,
  tp_comm_overlap_needs_sequence_parallel,
  overlap_param_gather_needs_distributed_optimizer,
  overlap_param_gather_needs_overlap_grad_reduce,
  bucket_size_positive,
  bucket_size_needs_overlap_grad_reduce,
  layer_split_conflict,
  virtual_stages_conflict,
  uneven_split_needs_pp,
  layer_split_length,
  layer_split_counts,
  uneven_layers_not_divisible,
  layers_divisible_by_pp,
  virtual_stages_need_interleaved,
  interleaved_needs_pp,
  interleaved_needs_virtual_stages,
  virtual_stage_divides_stage,
  interleaved_needs_two_virtual_stages,
  devices_divisible_by_model_parallel,
  world_size_matches,
  device_group_straddles_stage,
  batch_divisible,
  interleaved_microbatches_divisible_by_pp,
};
inline constexpr size_t kPlanRuleCount = 29;
// A short statement of the rule for reject counts: "num-attention-heads % tp != 0".
std::string_view describe(PlanRule rule);

struct Plan {
  ModelSpec model;
  TrainSpec training;
  ClusterSpec cluster;
  ParallelPlan parallel;

  // Checks each part, then Megatron-LM's rules across them. Throws InvalidInput naming the
  // fields, their values and the rule that failed.
  void validate() const;
  // The first cross-part rule the plan breaks, without building a message; assumes the model,
  // training and cluster parts are valid on their own. For searching many candidates.
  std::optional<PlanRule> violated_rule() const;

  // Microbatches per step: m = B / (d·b).
  int64_t microbatches() const;
  // Virtual stages per pipeline rank (v); 1 unless the schedule is interleaved.
  int64_t virtual_stages() const;
  // Transformer layers of each virtual stage, in model order: entry c·pp + r is chunk c of
  // pipeline rank r (with v = 1, simply the layers of each pipeline stage). Even unless the plan
  // has a layer-split rule (ParallelPlan::has_layer_split_rule). Assumes a valid plan.
  std::vector<int64_t> virtual_stage_layers() const;
  // Transformer layers on each pipeline rank: the sum of its chunks.
  std::vector<int64_t> pipeline_rank_layers() const;
  // Whether every virtual stage holds the same number of layers.
  bool even_layer_split() const;
  // The device group (index into cluster.device_groups()) of each pipeline rank: all 0 on a
  // cluster of one kind. Assumes a valid plan (each group holds whole stages).
  std::vector<int64_t> pipeline_rank_groups() const;
  // The vocabulary rows this plan trains: padded for its tensor-parallel size (core/vocabulary.hpp).
  int64_t padded_vocab_size() const { return core::padded_vocab_size(model, parallel.tensor_parallel); }
  // The model with padded_vocab_size fixed to that, for code that holds a ModelSpec alone (the
  // executor's parameter declarations).
  ModelSpec trained_model() const;

  bool operator==(const Plan&) const = default;
};

}  // namespace loom::core
