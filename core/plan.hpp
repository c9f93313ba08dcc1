#pragma once
// Plan: the hand-off document (plan.json) that bundles what is trained, how, on what, and how it
// is split. The planner writes it, `loom show` explains it, the executor runs it.

#include "core/cluster_spec.hpp"
#include "core/model_spec.hpp"
#include "core/parallel_plan.hpp"
#include "core/train_spec.hpp"

#include <cstdint>

namespace loom::core {

struct Plan {
  ModelSpec model;
  TrainSpec training;
  ClusterSpec cluster;
  ParallelPlan parallel;

  // Checks each part, then Megatron-LM's rules across them. Throws InvalidInput naming the
  // fields, their values and the rule that failed.
  void validate() const;

  // Microbatches per step: m = B / (d·b).
  int64_t microbatches() const;
  // Virtual stages per pipeline rank (v); 1 unless the schedule is interleaved.
  int64_t virtual_stages() const;
  int64_t layers_per_pipeline_stage() const;

  bool operator==(const Plan&) const = default;
};

}  // namespace loom::core
