#pragma once
// How one training step is split over the devices: Megatron-LM's PTD-P knobs.

#include "core/enums.hpp"

#include <cstdint>
#include <optional>

namespace loom::core {

struct ParallelPlan {
  int64_t tensor_parallel = 1;    // tensor-model-parallel-size (t)
  int64_t pipeline_parallel = 1;  // pipeline-model-parallel-size (p)
  // data-parallel-size (d). Never stored in plan.json: it is always devices / (t·p), and the
  // plan reader fills it in.
  int64_t data_parallel = 1;
  // num-layers-per-virtual-pipeline-stage; set only for the interleaved schedule.
  std::optional<int64_t> layers_per_virtual_stage;
  int64_t micro_batch_size = 1;  // b
  Schedule schedule = Schedule::one_f_one_b;
  Recompute recompute = Recompute::none;
  bool sequence_parallel = false;
  bool distributed_optimizer = false;  // ZeRO-1: optimizer state sharded over data parallel

  int64_t model_parallel_size() const { return tensor_parallel * pipeline_parallel; }
  int64_t world_size() const { return model_parallel_size() * data_parallel; }

  bool operator==(const ParallelPlan&) const = default;
};

}  // namespace loom::core
