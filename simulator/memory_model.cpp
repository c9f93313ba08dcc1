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

namespace {

// Layer-microbatches alive at the peak on pipeline rank `stage`, whose chunk c holds
// stage_layers[c·p + stage] layers (Plan::virtual_stage_layers).
double layers_in_flight(const core::Plan& plan, int64_t stage, const std::vector<int64_t>& stage_layers) {
  const int64_t p = plan.parallel.pipeline_parallel;
  const int64_t m = plan.microbatches();
  const double own = double(stage_layers[size_t(stage)]);  // chunk 0's (the rank's, without interleaving)
  switch (plan.parallel.schedule) {
    case core::Schedule::gpipe:
      // All forwards run before any backward: every microbatch is alive at the peak.
      return double(m) * own;
    case core::Schedule::one_f_one_b:
      // Rank r runs p − r − 1 warm-up forwards plus one before its first backward
      // (Narayanan et al. SC21 §2.2.1; Korthikanti §4.2.3: stage 0 holds p microbatches).
      return double(std::min(p - stage, m)) * own;
    case core::Schedule::interleaved: {
      // Megatron's warm-up count for the interleaved schedule, plus the steady step's forward.
      const int64_t v = plan.virtual_stages();
      const int64_t total = m * v;
      const auto chunk_layers = [&](int64_t chunk) { return double(stage_layers[size_t(chunk * p + stage)]); };
      bool even = true;
      for (int64_t c = 1; c < v; ++c) even = even && chunk_layers(c) == own;
      const int64_t warmup = std::min((p - stage - 1) * 2 + (v - 1) * p, total);
      if (even) return double(std::min(warmup + 1, total)) * own;
      // Chunks of different sizes: the peak is no longer simply at the end of the warm-up (a steady
      // step may start a large chunk's forward while finishing a small one's backward). What is
      // alive after steady step j's forward, forwards [0, warm-up + j] less backwards [0, j), repeats
      // with period p·v in j (any p·v consecutive forwards or backwards take each chunk p times), so
      // one period of steady steps finds the peak.
      // Forwards and backwards take each chunk in runs of p (forward k: chunk (k mod p·v) / p;
      // backward k: v − 1 − that): alive changes by a fixed step within a run of both, so each run
      // is weighed at its two ends — O(v) runs, not O(p·v) steps, and no division in the loops
      // (a search counts this for every plan).
      const int64_t warmup_runs = warmup / p;
      double period = 0;
      for (int64_t c = 0; c < v; ++c) period += chunk_layers(c);
      double alive = double(warmup_runs / v) * double(p) * period;
      for (int64_t c = 0; c < warmup_runs % v; ++c) alive += double(p) * chunk_layers(c);
      alive += double(warmup % p) * chunk_layers(warmup_runs % v);
      if (warmup == total) return alive;
      double peak = 0;
      const auto run = [&](int64_t steps, double forward, double backward) {
        // After the forward of the run's step i: alive + i·(forward − backward) + forward.
        peak = std::max({peak, alive + forward, alive + double(steps - 1) * (forward - backward) + forward});
        alive += double(steps) * (forward - backward);
      };
      const int64_t steps = std::min(total - warmup, p * v);
      const int64_t offset = warmup % p;  // where in its run of p the first steady forward falls
      int64_t forward_chunk_now = warmup_runs % v, backward_chunk_now = v - 1;
      for (int64_t start = 0; start < steps; start += p) {
        // A block of p backwards of one chunk, beside p − offset forwards of one chunk and then
        // offset of the next.
        const int64_t block = std::min(p, steps - start);
        const int64_t first = std::min(block, p - offset);
        const double backward = chunk_layers(backward_chunk_now);
        const int64_t next = forward_chunk_now + 1 == v ? 0 : forward_chunk_now + 1;
        run(first, chunk_layers(forward_chunk_now), backward);
        if (block > first) run(block - first, chunk_layers(next), backward);
        forward_chunk_now = next;
        backward_chunk_now = backward_chunk_now == 0 ? v - 1 : backward_chunk_now - 1;
      }
      return peak;
    }
  }
  return 0;
}

}  // namespace

double layer_activations_in_flight(const core::Plan& plan, int64_t stage) {
  const int64_t p = plan.parallel.pipeline_parallel;
  if (stage < 0 || stage >= p)
    throw InvalidInput("pipeline stage {} is out of range: pipeline-model-parallel-size={}", stage,
                       p);
  return layers_in_flight(plan, stage, plan.virtual_stage_layers());
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

// What every stage's estimate shares, computed once per plan: the layers of each virtual stage
// (Plan::virtual_stage_layers) and one layer's activations per microbatch, stored and (with
// recompute) the extra working set of the layer being recomputed.
struct PlanTerms {
  std::vector<int64_t> stage_layers;
  double per_layer = 0, recompute_extra = 0;
};

PlanTerms plan_terms(const core::Plan& plan) {
  const core::ParallelPlan& par = plan.parallel;
  PlanTerms terms;
  terms.stage_layers = plan.virtual_stage_layers();
  terms.per_layer = activation_bytes_per_layer(plan.model, par.micro_batch_size, par.tensor_parallel,
                                               par.sequence_parallel, par.recompute, plan.training.dtype,
                                               par.attention_backend);
  // Recompute rebuilds one layer's activations just before its backward: that layer holds its
  // whole set for a moment, on top of what the other layers keep (Korthikanti's Table 2 counts
  // what is stored between the passes, not this working set).
  if (par.recompute != core::Recompute::none)
    terms.recompute_extra = activation_bytes_per_layer(plan.model, par.micro_batch_size, par.tensor_parallel,
                                                       par.sequence_parallel, core::Recompute::none,
                                                       plan.training.dtype, par.attention_backend) -
                            terms.per_layer;
  return terms;
}

StageMemoryEstimate estimate_stage_memory(const core::Plan& plan, int64_t stage, const PlanTerms& terms) {
  const core::ModelSpec& model = plan.model;
  const core::ParallelPlan& par = plan.parallel;
  const int64_t p = par.pipeline_parallel;
  const double t = double(par.tensor_parallel);
  const double sb = double(model.seq_length) * double(par.micro_batch_size);
  const double element = double(core::bytes_per_element(plan.training.dtype));
  const std::vector<int64_t>& stage_layers = terms.stage_layers;
  const double per_layer = terms.per_layer;
  const BytesPerParameter bpp = bytes_per_parameter(plan.training, par);

  int64_t rank_layers = 0;
  for (size_t s = size_t(stage); s < stage_layers.size(); s += size_t(p)) rank_layers += stage_layers[s];

  StageMemoryEstimate mem;
  const double n = double(core::parameters_per_device_on_stage(plan, stage, rank_layers));
  mem.weights = n * bpp.weights;
  mem.gradients = n * bpp.gradients;
  mem.optimizer = n * bpp.optimizer;

  double activations = per_layer * layers_in_flight(plan, stage, stage_layers);
  if (rank_layers > 0) activations += terms.recompute_extra;  // 0 without recompute
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
  const StageMemoryEstimate estimate = estimate_stage_memory(plan, stage, plan_terms(plan));
  const std::optional<StageMemory> counted = counted_stage_memory(estimate, options);
  if (!counted) throw_uncountable_memory(plan, stage, estimate);
  return *counted;
}

namespace {

// Calls visit(stage) for every stage that may hold the most memory of its device group (stages
// in order; `rank_groups` gives each stage's group, all 0 when null). A stage is skipped when an
// earlier stage of its group holds at least as many layers in every chunk: that one holds at least
// its weights and, the schedules keeping at least as many microbatches in flight on earlier ranks
// at every step, at least its activations (plus the embedding on the first stage). The last stage
// (the output layer and the logits) is always visited. With an even split this leaves each group's
// first stage and the last.
template <typename Visit>
void visit_peak_candidates(const core::Plan& plan, const std::vector<int64_t>& stage_layers,
                           const std::vector<int64_t>* rank_groups, Visit&& visit) {
  const int64_t p = plan.parallel.pipeline_parallel;
  const size_t stages = stage_layers.size();
  int64_t last_visited = -1;
  for (int64_t stage = 0; stage < p; ++stage) {
    const bool same_group =
        last_visited >= 0 && (!rank_groups || (*rank_groups)[size_t(stage)] == (*rank_groups)[size_t(last_visited)]);
    bool dominated = same_group && stage != p - 1;
    for (size_t s = size_t(stage); dominated && s < stages; s += size_t(p))
      dominated = stage_layers[s - size_t(stage) + size_t(last_visited)] >= stage_layers[s];
    if (dominated) continue;
    visit(stage);
    last_visited = stage;
  }
}

}  // namespace

std::optional<int64_t> countable_peak_memory_bytes(const core::Plan& plan, const MemoryOptions& options) {
  const PlanTerms terms = plan_terms(plan);
  int64_t peak = 0;
  bool countable = true;
  visit_peak_candidates(plan, terms.stage_layers, nullptr, [&](int64_t stage) {
    if (!countable) return;
    const std::optional<StageMemory> memory = counted_stage_memory(estimate_stage_memory(plan, stage, terms), options);
    if (!memory) countable = false;
    else peak = std::max(peak, memory->total_bytes());
  });
  if (!countable) return std::nullopt;
  return peak;
}

std::optional<MemoryFit> countable_memory_fit(const core::Plan& plan, const std::vector<GroupMemory>& groups) {
  const PlanTerms terms = plan_terms(plan);
  const std::vector<int64_t> rank_groups = plan.pipeline_rank_groups();
  MemoryFit fit;
  bool countable = true, first = true;
  visit_peak_candidates(plan, terms.stage_layers, &rank_groups, [&](int64_t stage) {
    if (!countable) return;
    const GroupMemory& group = groups.at(size_t(rank_groups[size_t(stage)]));
    const std::optional<StageMemory> memory =
        counted_stage_memory(estimate_stage_memory(plan, stage, terms), group.options);
    if (!memory) {
      countable = false;
      return;
    }
    const int64_t total = memory->total_bytes(), excess = total - group.capacity_bytes;
    fit.peak_bytes = std::max(fit.peak_bytes, total);
    if (first || excess > fit.excess_bytes) {
      fit.excess_bytes = excess;
      fit.worst_stage = stage;
    }
    first = false;
  });
  if (!countable) return std::nullopt;
  return fit;
}

std::vector<StageMemory> memory_per_stage(const core::Plan& plan, const MemoryOptions& options) {
  return memory_per_stage(plan, std::vector<MemoryOptions>{options});
}

std::vector<StageMemory> memory_per_stage(const core::Plan& plan, const std::vector<MemoryOptions>& group_options) {
  const PlanTerms terms = plan_terms(plan);
  const std::vector<int64_t> rank_groups = plan.pipeline_rank_groups();
  std::vector<StageMemory> stages;
  stages.reserve(size_t(plan.parallel.pipeline_parallel));
  for (int64_t stage = 0; stage < plan.parallel.pipeline_parallel; ++stage) {
    const size_t group = group_options.size() == 1 ? 0 : size_t(rank_groups[size_t(stage)]);
    const StageMemoryEstimate estimate = estimate_stage_memory(plan, stage, terms);
    const std::optional<StageMemory> counted = counted_stage_memory(estimate, group_options.at(group));
    if (!counted) throw_uncountable_memory(plan, stage, estimate);
    stages.push_back(*counted);
  }
  return stages;
}

int64_t peak_memory_bytes(const core::Plan& plan, const MemoryOptions& options) {
  const PlanTerms terms = plan_terms(plan);
  int64_t peak = 0;
  visit_peak_candidates(plan, terms.stage_layers, nullptr, [&](int64_t stage) {
    const StageMemoryEstimate estimate = estimate_stage_memory(plan, stage, terms);
    const std::optional<StageMemory> counted = counted_stage_memory(estimate, options);
    if (!counted) throw_uncountable_memory(plan, stage, estimate);
    peak = std::max(peak, counted->total_bytes());
  });
  return peak;
}

}  // namespace loom::sim
