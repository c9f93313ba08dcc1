#pragma once
// Parameter and FLOP counts of a model and a plan: the exact counts Loom uses, and Megatron-LM's
// published closed forms (Narayanan et al., SC21, §5.1 and Appendix) they are tested against.

#include "core/plan.hpp"

#include <cstdint>
#include <vector>

namespace loom::core {

// The functions of a ModelSpec alone count its rows before any padding for tp (model_vocab_size:
// a pin, else the tokenizer's vocabulary, as papers publish their counts); those of a Plan count
// the rows the plan trains (Plan::padded_vocab_size, as Megatron does).

// Exact trainable parameters: embeddings (+ learned positions), per layer the norms, attention
// (grouped-query aware), MLP (GELU or SwiGLU) and biases, the final norm, and the output layer
// when it is not tied. GPT-2 124M: 124,439,808.
int64_t parameter_count(const ModelSpec& model);

// Megatron's estimate P = 12·L·h²·(1 + 13/(12h) + (V + s)/(12·L·h)) for GPT models.
double megatron_parameter_estimate(const ModelSpec& model);

// Model FLOPs of one training step (forward 1×, backward 2×) over `sequences` sequences, counted
// from the matrix multiplications, attention scores/values (full s×s, as Megatron counts them)
// and the logits. Equals 72·B·s·L·h²·(1 + s/(6h) + V/(12·h·L)) for a GPT model.
double model_flops_per_step(const ModelSpec& model, int64_t sequences);
double model_flops_per_step(const Plan& plan);  // over its global batch

// What the hardware computes: the model FLOPs plus the recomputed forward work (selective: the
// attention core; full: every layer's forward).
double hardware_flops_per_step(const ModelSpec& model, int64_t sequences, Recompute recompute);
double hardware_flops_per_step(const Plan& plan);  // over its global batch, with its recompute

// The published closed forms themselves, for GPT models (MHA, 4h MLP).
double megatron_model_flops_per_step(const ModelSpec& model, int64_t sequences);
double megatron_full_recompute_flops_per_step(const ModelSpec& model, int64_t sequences);

// Parameters one device holds on each pipeline stage (index = stage), after tensor-parallel
// sharding: the stage's own layers (Plan::pipeline_rank_layers), the embedding on the first stage, the final norm and the output
// layer (or, when tied and pp > 1, Megatron's copy of the embedding) on the last.
std::vector<int64_t> parameters_per_device_by_stage(const Plan& plan);
// The parts of a stage's parameters on one device: one transformer layer, the input embedding
// (and learned positions) of the first stage, the final norm and output projection of the last.
int64_t layer_parameters_per_device(const Plan& plan);
int64_t input_parameters_per_device(const Plan& plan);
int64_t output_parameters_per_device(const Plan& plan);
int64_t parameters_per_device_on_stage(const Plan& plan, int64_t stage);
// The same with the stage's transformer layers given (a search that knows them already).
int64_t parameters_per_device_on_stage(const Plan& plan, int64_t stage, int64_t stage_layers);

}  // namespace loom::core
