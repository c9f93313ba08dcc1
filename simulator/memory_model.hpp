#pragma once
// Per-device memory of a plan, stage by stage: weights, gradients and optimizer state (Megatron's
// mixed-precision Adam, ZeRO-1 sharded with the distributed optimizer), activations per recompute
// mode (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
// Table 2) times the microbatches the pipeline schedule keeps in flight, the logits on the last
// stage and a fixed reserve for the CUDA context and library workspaces.

#include "core/enums.hpp"
#include "core/model_spec.hpp"
#include "core/parallel_plan.hpp"
#include "core/plan.hpp"
#include "core/profile.hpp"
#include "core/train_spec.hpp"

#include <cstdint>
#include <optional>
#include <vector>

namespace loom::sim {

struct StageMemory {
  int64_t weights_bytes = 0;
  int64_t gradients_bytes = 0;
  int64_t optimizer_bytes = 0;
  int64_t activations_bytes = 0;
  int64_t other_bytes = 0;

  int64_t total_bytes() const;
};

struct MemoryOptions {
  // CUDA context, cuBLAS/NCCL workspaces and caching-allocator slack; counted in other_bytes on
  // every stage.
  int64_t reserved_bytes = core::DeviceSpec::kDefaultRuntimeReserveBytes;
};
// The options a profile implies: its device's runtime reserve (absent: 1 GiB).
MemoryOptions memory_options(const core::Profile& profile);

// Activation bytes of ONE transformer layer for ONE microbatch of b sequences on one device,
// Korthikanti et al. 2022 Table 2 with 16-bit activations:
//   no SP:  s·b·h·(10 + 24/t + 5·a·s/(h·t));  selective recompute drops the 5·a·s/(h·t) term
//   SP:     s·b·h/t·(34 + 5·a·s/h);            selective drops 5·a·s/h
//   full:   2·s·b·h (the layer input only), divided by t with SP.
// The 24 is GPT's (multi-head attention, GELU MLP of 4h); in general it is
//   4 + 4·k/h + 4·f/h (GELU) or 4 + 4·k/h + 6·f/h (SwiGLU: [gate | up] 2f wide kept, f out),
// with k the width at which keys and values are kept: g·d with grouped-query attention under
// flash attention or selective recompute, h where Megatron's unfused attention keeps each
// head's copy of its group's.
// fp32 training doubles every term (scaled by bytes_per_element(dtype) / 2).
// Flash attention: never the 5·a·s/h term, plus an fp32 log-sum-exp, 4·a·s·b/t bytes.
double activation_bytes_per_layer(const core::ModelSpec& model, int64_t micro_batch_size,
                                  int64_t tensor_parallel, bool sequence_parallel,
                                  core::Recompute recompute, core::DType dtype,
                                  core::AttentionBackend attention = core::AttentionBackend::unfused);

// Layer-microbatches ("activation sets") alive at the peak on pipeline stage `stage`, which holds
// L_r layers (Plan::pipeline_rank_layers; L/p with an even split):
//   gpipe: m · L_r;  1f1b: min(p − stage, m) · L_r;
//   interleaved (v chunks of l = L/(p·v) layers each):
//     min((p − stage − 1)·2 + (v − 1)·p + 1, m·v) · l.
// On stage 0 the interleaved count equals L/p · p·(1 + (p − 1)/(p·v)), Korthikanti's factor.
// Interleaved with chunks of different sizes: the most the schedule's order keeps alive, each
// chunk weighted by its layers (one period of its steady steps, O(p·v)).
// Throws InvalidInput when stage is not in [0, p).
double layer_activations_in_flight(const core::Plan& plan, int64_t stage);

// Microbatches whose embedding output stage 0 holds at the peak: m for gpipe, min(p, m) for 1f1b,
// and for interleaved the most model-chunk-0 microbatches alive at once (min(2p, m)).
int64_t embedding_microbatches_in_flight(const core::Plan& plan);
// The same for the interleaved schedule by replaying its order (exposed for tests of the closed
// form used when p divides m).
int64_t interleaved_chunk0_peak(int64_t p, int64_t v, int64_t m);

// Bytes one device spends per parameter it holds.
//   bf16/fp16: weights 2, fp32 main gradients 4, fp32 master + Adam m + v 12 → 18;
//              distributed optimizer: 6 + 12/d.
//   fp32:      weights 4, gradients 4, Adam m + v 8 (no master copy) → 16; distributed: 8 + 8/d.
struct BytesPerParameter {
  double weights = 0;
  double gradients = 0;
  double optimizer = 0;

  double total() const { return weights + gradients + optimizer; }
};
BytesPerParameter bytes_per_parameter(const core::TrainSpec& training,
                                      const core::ParallelPlan& parallel);

// Memory of one device on pipeline stage `stage` for a plan that passed validate(). Each part is
// computed in floating point and kept in bytes only up to core::limits::kMaxCountedBytes (1 EiB):
// beyond, InvalidInput names the fields that drive it (an absurd sequence, micro-batch or model).
StageMemory stage_memory(const core::Plan& plan, int64_t stage, const MemoryOptions& options = {});

// The most any stage needs: max over memory_per_stage, computed from the two end stages only when
// the split is even (every stage, when it is not). Throws InvalidInput as stage_memory does.
int64_t peak_memory_bytes(const core::Plan& plan, const MemoryOptions& options = {});
// The same without throwing: nothing when a part cannot be counted (a search counts the plan as
// a reject with that reason).
std::optional<int64_t> countable_peak_memory_bytes(const core::Plan& plan, const MemoryOptions& options = {});

// Memory of one device on each pipeline stage (index = stage) for a plan that passed validate().
std::vector<StageMemory> memory_per_stage(const core::Plan& plan,
                                          const MemoryOptions& options = {});
// The same on a mixed cluster: each stage with its device group's options (index = group, as
// cluster.device_groups(); one entry serves every stage).
std::vector<StageMemory> memory_per_stage(const core::Plan& plan, const std::vector<MemoryOptions>& group_options);

// Each device group's runtime reserve and device memory.
struct GroupMemory {
  MemoryOptions options;
  int64_t capacity_bytes = 0;
};
// Whether every stage fits in its own group's device memory.
struct MemoryFit {
  int64_t peak_bytes = 0;    // the most any stage needs
  int64_t excess_bytes = 0;  // the most any stage needs beyond its group's capacity (≤ 0: all fit)
  int64_t worst_stage = 0;   // the stage with that excess
  bool fits() const { return excess_bytes <= 0; }
};
// From the stages that can hold their group's peak (as countable_peak_memory_bytes); `groups`
// indexed as cluster.device_groups(). Nothing when a part cannot be counted.
std::optional<MemoryFit> countable_memory_fit(const core::Plan& plan, const std::vector<GroupMemory>& groups);

}  // namespace loom::sim
