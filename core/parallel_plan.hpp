#pragma once
// How one training step is split over the devices: Megatron-LM's PTD-P knobs.

#include "core/enums.hpp"

#include <cstdint>
#include <algorithm>
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
  // attention-backend. Plans written before it existed read as unfused, what Loom assumed then.
  AttentionBackend attention_backend = AttentionBackend::unfused;
  // Megatron-Core's overlaps (all off in plans written before they existed, and in Megatron):
  // overlap-grad-reduce: each gradient bucket's data-parallel reduction starts as soon as the
  // backward has completed it, beside the rest of the backward.
  bool overlap_grad_reduce = false;
  // overlap-param-gather: the distributed optimizer's all-gather of updated parameters runs bucket
  // by bucket beside the next step's forward (needs the distributed optimizer and
  // overlap-grad-reduce).
  bool overlap_param_gather = false;
  // tp-comm-overlap: tensor-parallel all-gathers and reduce-scatters split into chunks that run
  // beside the GEMMs consuming or producing them (needs sequence parallelism).
  bool tp_comm_overlap = false;
  // ddp-bucket-size: parameters per gradient bucket. Absent: Megatron's rule,
  // max(40,000,000, 1,000,000 × data-parallel-size). Only with overlap-grad-reduce (without it
  // Megatron reduces all gradients as one bucket).
  std::optional<int64_t> ddp_bucket_size;

  // Parameters per gradient bucket: the plan's ddp-bucket-size or Megatron's default rule.
  int64_t grad_bucket_parameters() const {
    return ddp_bucket_size ? *ddp_bucket_size : std::max<int64_t>(40'000'000, 1'000'000 * data_parallel);
  }

  int64_t model_parallel_size() const { return tensor_parallel * pipeline_parallel; }
  int64_t world_size() const { return model_parallel_size() * data_parallel; }

  bool operator==(const ParallelPlan&) const = default;
};

}  // namespace loom::core
