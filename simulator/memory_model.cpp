#include "simulator/memory_model.hpp"

#include "core/checked_arithmetic.hpp"
#include "core/error.hpp"
#include "core/model_arithmetic.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

namespace loom::sim {
namespace {

// Megatron-LM's interleaved schedule (core/pipeline_parallel/schedules.py) runs forwards in
// groups of p microbatches per model chunk, chunk 0 first; backwards run the chunks in reverse.
int64_t forward_chunk(int64_t k, int64_t p, int64_t v) {
  return (k % (p * v)) / p;
}
int64_t backward_chunk(int64_t k, int64_t p, int64_t v) {
  return v - 1 - (k % (p * v)) / p;
}

// Most model-chunk-0 microbatches alive at once on pipeline rank 0 under the interleaved
// schedule, found by replaying its order: warm-up forwards, then one backward and one forward
// per steady step. Evaluates to min(2p, m) when p divides m (which validate() requires), but the
// replay keeps it honest for any m.
}  // namespace

int64_t interleaved_chunk0_peak(int64_t p, int64_t v, int64_t m) {
  const int64_t total = m * v;
  const int64_t warmup = std::min((p - 1) * 2 + (v - 1) * p + 1, total);
  int64_t alive = 0, peak = 0, forwards = 0;
  for (; forwards < warmup; ++forwards) {
    if (forward_chunk(forwards, p, v) == 0) peak = std::max(peak, ++alive);
  }
  for (int64_t backward = 0; backward < total; ++backward) {
    if (backward_chunk(backward, p, v) == 0) --alive;
    if (forwards < total && forward_chunk(forwards++, p, v) == 0) peak = std::max(peak, ++alive);
  }
  return peak;
}

namespace {

// What a layer stores inside its tensor-parallel regions (split over t), per s·b·h, with 16-bit
// activations: Korthikanti §4.1's 24 for GPT, counted from the model's widths so that it holds
// for grouped-query attention and SwiGLU too.
//   q (2), the projection's input (2), k and v (2 each, at their width over h);
//   MLP with GELU: the up projection's output, GELU's input (2·f/h), and its output, the down
//   projection's input (2·f/h); with SwiGLU: the fused [gate | up] output it reads back (4·f/h)
//   and its output (2·f/h).
// `grouped_key_value`: k and v are kept at the query groups' width. Flash attention reads the
// groups as they are, and selective recompute keeps the attention core's inputs, the groups;
// Megatron's unfused attention copies each group's k and v to every head of the group
// (repeat_interleave) and its products keep those copies, as wide as q.
double tensor_parallel_bytes_per_sbh(const core::ModelSpec& model, bool grouped_key_value) {
  const double h = double(model.hidden_size);
  const double key_value = grouped_key_value ? double(model.query_groups() * model.kv_channels()) : h;
  const double f = double(model.ffn_hidden_size);
  const double mlp = model.activation == core::Activation::swiglu ? 6.0 : 4.0;
  return 4.0 + 4.0 * key_value / h + mlp * f / h;
}

}  // namespace

int64_t StageMemory::total_bytes() const {
  return weights_bytes + gradients_bytes + optimizer_bytes + activations_bytes + other_bytes;
}

double activation_bytes_per_layer(const core::ModelSpec& model, int64_t micro_batch_size,
                                  int64_t tensor_parallel, bool sequence_parallel,
                                  core::Recompute recompute, core::DType dtype,
                                  core::AttentionBackend attention) {
  const double s = double(model.seq_length);
  const double h = double(model.hidden_size);
  const double a = double(model.num_attention_heads);
  const double t = double(tensor_parallel);
  const double sbh = s * double(micro_batch_size) * h;
  double bytes = 0;
  // Flash attention stores no s² tensor: the softmax output, its dropout mask and the dropped-out
  // scores (the 5·a·s/h term) are never written; it keeps one fp32 log-sum-exp per row and head
  // instead, 4·a·s·b/t bytes, whatever the training type (FlashAttention-2 §3.1). Selective
  // recompute then has nothing to drop, and stores what no recompute stores.
  const bool flash = attention == core::AttentionBackend::flash;
  const double log_sum_exp = flash && recompute != core::Recompute::full
                                 ? 4.0 * a * s * double(micro_batch_size) / t
                                 : 0.0;
  if (flash && recompute == core::Recompute::none) recompute = core::Recompute::selective;
  const double sharded = tensor_parallel_bytes_per_sbh(model, recompute != core::Recompute::none);
  // Outside the tensor-parallel regions (replicated over t, or split along the sequence with
  // SP), 10·s·b·h: the inputs of both norms, of the QKV projection and of the MLP's up
  // projection (2 each) and the two dropout masks (1 each). RMSNorm keeps its input as LayerNorm
  // does; the norms' fp32 statistics (LayerNorm's mean and 1/σ, RMSNorm's 1/rms), O(s·b), are
  // left out, as Korthikanti leaves them out.
  switch (recompute) {
    case core::Recompute::full:
      // Only each layer's input is checkpointed (2 bytes per element); with SP it is the
      // sequence-sharded input, so 1/t of it (Korthikanti §5, Table 2 last row).
      bytes = 2.0 * sbh / (sequence_parallel ? t : 1.0);
      break;
    case core::Recompute::selective:
      // Selective recompute re-runs the attention core, so the 5·a·s/h term (softmax output,
      // its dropout mask, QKᵀ inputs) is not stored (Korthikanti §4.2).
      bytes = sequence_parallel ? sbh / t * (10.0 + sharded) : sbh * (10.0 + sharded / t);
      break;
    case core::Recompute::none:
      // Without SP the LayerNorms and dropouts (10·s·b·h) stay replicated over the TP group;
      // SP shards them along the sequence too (Korthikanti §4.2.2, Table 2).
      bytes = sequence_parallel ? sbh / t * (10.0 + sharded + 5.0 * a * s / h)
                                : sbh * (10.0 + sharded / t + 5.0 * a * s / (h * t));
      break;
  }
  // Table 2 assumes 16-bit activations (1-byte dropout masks included); for fp32 training we
  // scale the whole figure, masks too, which overstates by the masks' share — an accepted
  // simplification since fp32 runs are small.
  return bytes * double(core::bytes_per_element(dtype)) / 2.0 + log_sum_exp;
}

double layer_activations_in_flight(const core::Plan& plan, int64_t stage) {
  const int64_t p = plan.parallel.pipeline_parallel;
  if (stage < 0 || stage >= p)
    throw InvalidInput("pipeline stage {} is out of range: pipeline-model-parallel-size={}", stage,
                       p);
  const int64_t m = plan.microbatches();
  const double layers_per_stage = double(plan.layers_per_pipeline_stage());
  switch (plan.parallel.schedule) {
    case core::Schedule::gpipe:
      // All forwards run before any backward: every microbatch is alive at the peak.
      return double(m) * layers_per_stage;
    case core::Schedule::one_f_one_b:
      // Rank r runs p − r − 1 warm-up forwards plus one before its first backward
      // (Narayanan et al. SC21 §2.2.1; Korthikanti §4.2.3: stage 0 holds p microbatches).
      return double(std::min(p - stage, m)) * layers_per_stage;
    case core::Schedule::interleaved: {
      // Megatron's warm-up count for the interleaved schedule, plus the steady step's forward.
      const int64_t v = plan.virtual_stages();
      const int64_t chunks = std::min((p - stage - 1) * 2 + (v - 1) * p + 1, m * v);
      return double(chunks) * layers_per_stage / double(v);
    }
  }
  return 0;
}

int64_t embedding_microbatches_in_flight(const core::Plan& plan) {
  const int64_t p = plan.parallel.pipeline_parallel;
  const int64_t m = plan.microbatches();
  switch (plan.parallel.schedule) {
    case core::Schedule::gpipe:
      return m;
    case core::Schedule::one_f_one_b:
      return std::min(p, m);
    case core::Schedule::interleaved:
      // The replay is O(m·v); with p dividing m (validate() requires it) it always comes to
      // min(2p, m), which a test checks over a grid.
      return m % p == 0 ? std::min(2 * p, m) : interleaved_chunk0_peak(p, plan.virtual_stages(), m);
  }
  return 0;
}

BytesPerParameter bytes_per_parameter(const core::TrainSpec& training,
                                      const core::ParallelPlan& parallel) {
  // Megatron-LM mixed precision (Korthikanti §2; Megatron's distributed-optimizer docs): 16-bit
  // weights, fp32 main gradients, fp32 master weights + Adam m and v. Pure fp32 training needs no
  // master copy. ZeRO-1 (distributed optimizer) shards only the optimizer state over d.
  const bool fp32 = training.dtype == core::DType::fp32;
  const double optimizer = fp32 ? 8.0 : 12.0;
  const double shards = parallel.distributed_optimizer ? double(parallel.data_parallel) : 1.0;
  return {fp32 ? 4.0 : 2.0, 4.0, optimizer / shards};
}

namespace {

// One device's memory on one stage in floating point, before it is kept as integer bytes.
struct StageMemoryEstimate {
  double weights = 0, gradients = 0, optimizer = 0, activations = 0;
};

StageMemoryEstimate estimate_stage_memory(const core::Plan& plan, int64_t stage) {
  const core::ModelSpec& model = plan.model;
  const core::ParallelPlan& par = plan.parallel;
  const int64_t p = par.pipeline_parallel;
  const double t = double(par.tensor_parallel);
  const double sb = double(model.seq_length) * double(par.micro_batch_size);
  const double element = double(core::bytes_per_element(plan.training.dtype));
  const double per_layer =
      activation_bytes_per_layer(model, par.micro_batch_size, par.tensor_parallel,
                                 par.sequence_parallel, par.recompute, plan.training.dtype, par.attention_backend);
  const BytesPerParameter bpp = bytes_per_parameter(plan.training, par);

  StageMemoryEstimate mem;
  const double n = double(core::parameters_per_device_on_stage(plan, stage));
  mem.weights = n * bpp.weights;
  mem.gradients = n * bpp.gradients;
  mem.optimizer = n * bpp.optimizer;

  double activations = per_layer * layer_activations_in_flight(plan, stage);
  if (par.recompute != core::Recompute::none) {
    // Recompute rebuilds one layer's activations just before its backward: that layer holds its
    // whole set for a moment, on top of what the other layers keep (Korthikanti's Table 2
    // counts what is stored between the passes, not this working set).
    activations += activation_bytes_per_layer(model, par.micro_batch_size, par.tensor_parallel, par.sequence_parallel,
                                              core::Recompute::none, plan.training.dtype, par.attention_backend) -
                   per_layer;
  }
  if (stage == 0) {
    // Assumption: the embedding output feeding the first layer (one activation element) and
    // its dropout mask (1 byte) stay alive for every microbatch in flight on stage 0;
    // Korthikanti §4.3 counts the mask, sequence-sharded with SP. This overlaps slightly with
    // the first layer's own stored input and errs on the safe side.
    const double embedding =
        sb * double(model.hidden_size) * (element + 1.0) / (par.sequence_parallel ? t : 1.0);
    activations += double(embedding_microbatches_in_flight(plan)) * embedding;
  }
  if (stage == p - 1) {
    // Logits of one microbatch, vocab-parallel over t (one activation element each), plus the
    // fp32 softmax the vocab-parallel cross-entropy keeps for its backward (Korthikanti §4.3).
    activations += sb * (double(plan.padded_vocab_size()) / t) * (element + 4.0);
  }
  mem.activations = activations;
  return mem;
}

// The estimate in integer bytes, or nothing when a part passes core::limits::kMaxCountedBytes.
std::optional<StageMemory> counted_stage_memory(const StageMemoryEstimate& estimate, const MemoryOptions& options) {
  const auto weights = core::countable_bytes(estimate.weights), gradients = core::countable_bytes(estimate.gradients);
  const auto optimizer = core::countable_bytes(estimate.optimizer);
  const auto activations = core::countable_bytes(estimate.activations);
  if (!weights || !gradients || !optimizer || !activations) return std::nullopt;
  return StageMemory{*weights, *gradients, *optimizer, *activations, options.reserved_bytes};
}

[[noreturn]] void throw_uncountable_memory(const core::Plan& plan, int64_t stage, const StageMemoryEstimate& estimate) {
  const core::ModelSpec& m = plan.model;
  const core::ParallelPlan& par = plan.parallel;
  if (!core::countable_bytes(estimate.activations))
    throw InvalidInput(
        "seq-length={} with micro-batch-size={} (hidden-size={}, num-attention-heads={}, tensor-model-parallel-size={}, "
        "recompute-granularity={}, {} microbatches): the activations on pipeline stage {} would take {:.3g} bytes "
        "per device, more than the 2^60 bytes (1 EiB) Loom counts (int64 bytes)",
        m.seq_length, par.micro_batch_size, m.hidden_size, m.num_attention_heads, par.tensor_parallel,
        core::to_string(par.recompute), plan.microbatches(), stage, estimate.activations);
  const double state = std::max({estimate.weights, estimate.gradients, estimate.optimizer});
  throw InvalidInput(
      "num-layers={}, hidden-size={}, ffn-hidden-size={}, padded-vocab-size={} over tensor-model-parallel-size={} × "
      "pipeline-model-parallel-size={}: the weights, gradients and optimizer state on pipeline stage {} would take "
      "{:.3g} bytes per device, more than the 2^60 bytes (1 EiB) Loom counts (int64 bytes)",
      m.num_layers, m.hidden_size, m.ffn_hidden_size, plan.padded_vocab_size(), par.tensor_parallel, par.pipeline_parallel,
      stage, state);
}

}  // namespace

MemoryOptions memory_options(const core::Profile& profile) {
  return MemoryOptions{profile.device.runtime_reserve_or_default()};
}

StageMemory stage_memory(const core::Plan& plan, int64_t stage, const MemoryOptions& options) {
  const StageMemoryEstimate estimate = estimate_stage_memory(plan, stage);
  const std::optional<StageMemory> counted = counted_stage_memory(estimate, options);
  if (!counted) throw_uncountable_memory(plan, stage, estimate);
  return *counted;
}

std::optional<int64_t> countable_peak_memory_bytes(const core::Plan& plan, const MemoryOptions& options) {
  // Every stage between the first and the last holds the same layers with fewer activations in
  // flight than the first, and neither the embedding nor the output layer: the peak is on one of
  // the two ends.
  const int64_t last = plan.parallel.pipeline_parallel - 1;
  const std::optional<StageMemory> first = counted_stage_memory(estimate_stage_memory(plan, 0), options);
  if (!first) return std::nullopt;
  if (last == 0) return first->total_bytes();
  const std::optional<StageMemory> final_stage = counted_stage_memory(estimate_stage_memory(plan, last), options);
  if (!final_stage) return std::nullopt;
  return std::max(first->total_bytes(), final_stage->total_bytes());
}

std::vector<StageMemory> memory_per_stage(const core::Plan& plan, const MemoryOptions& options) {
  std::vector<StageMemory> stages;
  stages.reserve(size_t(plan.parallel.pipeline_parallel));
  for (int64_t stage = 0; stage < plan.parallel.pipeline_parallel; ++stage)
    stages.push_back(stage_memory(plan, stage, options));
  return stages;
}

int64_t peak_memory_bytes(const core::Plan& plan, const MemoryOptions& options) {
  const int64_t last = plan.parallel.pipeline_parallel - 1;
  return std::max(stage_memory(plan, 0, options).total_bytes(), stage_memory(plan, last, options).total_bytes());
}

}  // namespace loom::sim
