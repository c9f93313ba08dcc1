#pragma once
// How one training step is split over the devices: Megatron-LM's PTD-P knobs.

#include "core/enums.hpp"

#include <cstdint>
#include <algorithm>
#include <optional>
#include <vector>

namespace loom::core {

struct ParallelPlan {
  int64_t tensor_parallel = 1;    // tensor-model-parallel-size (t)
  int64_t pipeline_parallel = 1;  // pipeline-model-parallel-size (p)
  // data-parallel-size (d). Never stored in plan.json: it is always devices / (t·p), and the
  // plan reader fills it in.
  int64_t data_parallel = 1;
  // num-layers-per-virtual-pipeline-stage; set only for the interleaved schedule.
  std::optional<int64_t> layers_per_virtual_stage;
  // num-virtual-stages-per-pipeline-rank: Megatron's other way to give the interleaved schedule's
  // virtual stages per rank, the one it requires with uneven first/last stages.
  std::optional<int64_t> virtual_stages_per_rank;

  // Uneven pipeline splits (balance by hardware). By default every virtual stage holds
  // num-layers / (pp · v) transformer layers. At most one of these changes that:
  //  - pipeline-layer-split (Loom's general form): the layers of each virtual stage in model order
  //    (virtual stage c·pp + r is chunk c of pipeline rank r), pp · v entries; e.g. [7, 9, 9, 7].
  //    The first and last may be 0 (a stage that holds only the embedding, or only the loss).
  //  - Megatron's decoder-first/last-pipeline-num-layers: the first / last pipeline rank holds that
  //    many layers, the other ranks split the rest evenly; each rank's layers split evenly over
  //    its v chunks.
  //  - Megatron's account-for-embedding/loss-in-pipeline-split: the embedding / the loss counts as
  //    one layer in an even split, so the first / last virtual stage holds one layer fewer.
  std::vector<int64_t> pipeline_layer_split;
  std::optional<int64_t> first_stage_layers;  // decoder-first-pipeline-num-layers
  std::optional<int64_t> last_stage_layers;   // decoder-last-pipeline-num-layers
  bool account_for_embedding = false;         // account-for-embedding-in-pipeline-split
  bool account_for_loss = false;              // account-for-loss-in-pipeline-split

  // Whether any of the above is set (the split may still come out even).
  bool has_layer_split_rule() const {
    return !pipeline_layer_split.empty() || first_stage_layers || last_stage_layers || account_for_embedding ||
           account_for_loss;
  }

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
