#pragma once
// Plans at the documented maxima (core/limits.hpp): one field at a time at its maximum, with
// the fields it must divide or be divided by raised with it, and every field at its maximum at
// once (the largest products). Each plan is valid; the core and simulator tests check that every
// count derived from it is representable, positive and finite, or refused with InvalidInput.

#include "core/limits.hpp"
#include "core/model_presets.hpp"
#include "core/plan.hpp"
#include "core/plan_json.hpp"

#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace loom::testing {

struct MaximaCase {
  std::string label;
  core::Plan plan;
};

inline void PrintTo(const MaximaCase& c, std::ostream* os) { *os << c.label; }

// Llama 3 405B on one node, tp 8, 8 sequences: valid, and small enough to simulate in full.
inline core::Plan maxima_base_plan() {
  core::Plan plan;
  plan.model = core::find_model_preset("llama3-405b").spec;
  plan.training.global_batch_size = 8;
  plan.cluster = {1, 8, "a100-80gb-dgx", 2.5, {}};
  plan.parallel.tensor_parallel = 8;
  plan.parallel.pipeline_parallel = 1;
  plan.parallel.micro_batch_size = 1;
  return plan;
}

// Every field at its maximum at once: 2^14 layers of hidden 2^20 with 2^16 heads, ffn, vocabulary
// and sequence 2^24, a micro-batch of the whole 2^24-sequence batch, 2^20 devices split tp 64 ×
// pp 2^14.
inline core::Plan all_maxima_plan(bool gpt_style) {
  namespace limits = core::limits;
  core::Plan plan = maxima_base_plan();
  core::ModelSpec& m = plan.model;
  m.num_layers = limits::kMaxLayers;
  m.hidden_size = limits::kMaxHidden;
  m.num_attention_heads = limits::kMaxHeads;
  m.num_query_groups = limits::kMaxHeads;
  m.ffn_hidden_size = limits::kMaxFfnHidden;
  m.vocab_size.reset();  // pinned: the largest size a plan can give
  m.padded_vocab_size = limits::kMaxVocab;
  m.seq_length = limits::kMaxSeqLength;
  if (gpt_style) {  // learned positions (s·h more parameters), biases, LayerNorm, tied
    m.activation = core::Activation::gelu;
    m.normalization = core::Normalization::layernorm;
    m.position_embedding = core::PositionEmbedding::learned_absolute;
    m.add_bias_linear = true;
    m.untie_embeddings_and_output_weights = false;
  }
  plan.training.global_batch_size = limits::kMaxGlobalBatch;
  plan.training.train_iters = limits::kMaxTrainIters;
  plan.training.lr_warmup_iters = limits::kMaxTrainIters;
  plan.cluster = {limits::kMaxDevices / limits::kMaxDevicesPerNode, limits::kMaxDevicesPerNode, "a100-80gb-dgx",
                  limits::kMaxPricePerDeviceHour, {}};
  plan.parallel.tensor_parallel = 64;
  plan.parallel.pipeline_parallel = limits::kMaxPipelineParallel;
  plan.parallel.micro_batch_size = limits::kMaxMicroBatch;
  return plan;
}

inline std::vector<MaximaCase> maxima_cases() {
  namespace limits = core::limits;
  std::vector<MaximaCase> cases;
  auto add = [&](std::string label, const std::function<void(core::Plan&)>& change) {
    core::Plan plan = maxima_base_plan();
    change(plan);
    core::derive_data_parallel(plan);
    cases.push_back({std::move(label), plan});
  };
  add("num_layers", [](core::Plan& p) { p.model.num_layers = limits::kMaxLayers; });
  add("hidden_size", [](core::Plan& p) { p.model.hidden_size = limits::kMaxHidden; });
  add("num_attention_heads", [](core::Plan& p) {
    p.model.hidden_size = limits::kMaxHidden;
    p.model.num_attention_heads = limits::kMaxHeads;
  });
  add("num_query_groups", [](core::Plan& p) {
    p.model.hidden_size = limits::kMaxHidden;
    p.model.num_attention_heads = limits::kMaxHeads;
    p.model.num_query_groups = limits::kMaxHeads;
  });
  add("ffn_hidden_size", [](core::Plan& p) { p.model.ffn_hidden_size = limits::kMaxFfnHidden; });
  add("padded_vocab_size", [](core::Plan& p) {
    p.model.vocab_size.reset();
    p.model.padded_vocab_size = limits::kMaxVocab;
  });
  add("vocab_size", [](core::Plan& p) { p.model.vocab_size = limits::kMaxVocab; });
  // The largest padding: the largest vocabulary to a multiple of the largest divisor × the
  // largest tp, about 2^32 rows (limits::kMaxPaddedVocab).
  add("vocab_padded_at_the_largest_tp", [](core::Plan& p) {
    p.model.hidden_size = limits::kMaxHidden;
    p.model.num_attention_heads = limits::kMaxHeads;
    p.model.num_query_groups = limits::kMaxHeads;
    p.model.ffn_hidden_size = limits::kMaxFfnHidden;
    p.model.vocab_size = limits::kMaxVocab;
    p.model.make_vocab_size_divisible_by = limits::kMaxVocabDivisor;
    p.cluster = {limits::kMaxTensorParallel / 1024, 1024, "a100-80gb-dgx", 1.0, {}};
    p.model.seq_length = limits::kMaxTensorParallel;
    p.parallel.tensor_parallel = limits::kMaxTensorParallel;
    p.parallel.sequence_parallel = true;
  });
  add("seq_length", [](core::Plan& p) { p.model.seq_length = limits::kMaxSeqLength; });
  add("seq_length_learned_positions", [](core::Plan& p) {
    p.model.seq_length = limits::kMaxSeqLength;
    p.model.position_embedding = core::PositionEmbedding::learned_absolute;
  });
  add("global_batch_size", [](core::Plan& p) { p.training.global_batch_size = limits::kMaxGlobalBatch; });
  add("micro_batch_size", [](core::Plan& p) {
    p.training.global_batch_size = limits::kMaxGlobalBatch;
    p.parallel.micro_batch_size = limits::kMaxMicroBatch;
  });
  add("train_iters", [](core::Plan& p) {
    p.training.train_iters = limits::kMaxTrainIters;
    p.training.lr_warmup_iters = limits::kMaxTrainIters;
  });
  add("floating_settings", [](core::Plan& p) {
    p.training.lr = limits::kMaxLearningRate;
    p.training.min_lr = limits::kMaxLearningRate;
    p.training.weight_decay = limits::kMaxWeightDecay;
    p.training.clip_grad = limits::kMaxClipGrad;
    p.training.adam_eps = limits::kMaxAdamEps;
    p.cluster.price_per_device_hour = limits::kMaxPricePerDeviceHour;
  });
  add("nodes", [](core::Plan& p) {
    p.cluster.nodes = limits::kMaxDevices / p.cluster.devices_per_node;
    p.training.global_batch_size = limits::kMaxGlobalBatch;
  });
  add("devices_per_node", [](core::Plan& p) {
    p.cluster = {limits::kMaxDevices / limits::kMaxDevicesPerNode, limits::kMaxDevicesPerNode, "a100-80gb-dgx", 1.0, {}};
    p.training.global_batch_size = limits::kMaxGlobalBatch;
  });
  add("tensor_parallel", [](core::Plan& p) {
    p.model.hidden_size = limits::kMaxHidden;
    p.model.num_attention_heads = limits::kMaxHeads;
    p.model.num_query_groups = limits::kMaxHeads;
    p.model.ffn_hidden_size = limits::kMaxFfnHidden;
    p.model.vocab_size.reset();
    p.model.padded_vocab_size = limits::kMaxVocab;
    p.cluster = {limits::kMaxTensorParallel / 1024, 1024, "a100-80gb-dgx", 1.0, {}};
    p.model.seq_length = limits::kMaxTensorParallel;  // sequence parallelism splits it
    p.parallel.tensor_parallel = limits::kMaxTensorParallel;
    p.parallel.sequence_parallel = true;
  });
  add("pipeline_parallel", [](core::Plan& p) {
    p.model.num_layers = limits::kMaxLayers;
    p.cluster = {limits::kMaxPipelineParallel, 8, "a100-80gb-dgx", 1.0, {}};
    p.parallel.pipeline_parallel = limits::kMaxPipelineParallel;
    p.training.global_batch_size = 64;
  });
  add("interleaved", [](core::Plan& p) {
    p.model.num_layers = limits::kMaxLayers;
    p.cluster = {64, 8, "a100-80gb-dgx", 1.0, {}};
    p.parallel.pipeline_parallel = 64;
    p.parallel.schedule = core::Schedule::interleaved;
    p.parallel.layers_per_virtual_stage = 1;  // 256 virtual stages per rank
    p.training.global_batch_size = 64;
  });
  for (const bool gpt : {true, false}) {
    core::Plan plan = all_maxima_plan(gpt);
    core::derive_data_parallel(plan);
    cases.push_back({gpt ? "every_field_gpt_style" : "every_field_llama_style", plan});
  }
  return cases;
}

}  // namespace loom::testing
