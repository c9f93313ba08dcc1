#include "core/model_arithmetic.hpp"

#include "core/checked_arithmetic.hpp"
#include "core/error.hpp"

namespace loom::core {
namespace {

// Parameter counts stay far inside int64 at the maxima of core/limits.hpp (static_asserts
// there); a spec beyond them that skipped validate() is refused rather than wrapped around.
[[noreturn]] void throw_uncountable_parameters(const ModelSpec& m) {
  throw InvalidInput("num-layers={}, hidden-size={}, ffn-hidden-size={}, vocabulary {}, seq-length={}: the "
                     "model's parameters exceed what Loom can count (int64)",
                     m.num_layers, m.hidden_size, m.ffn_hidden_size, model_vocab_size(m), m.seq_length);
}

int64_t parameter_product(const ModelSpec& m, int64_t a, int64_t b) {
  const std::optional<int64_t> product = checked_multiply(a, b);
  if (!product) throw_uncountable_parameters(m);
  return *product;
}

int64_t parameter_sum(const ModelSpec& m, int64_t a, int64_t b) {
  const std::optional<int64_t> sum = checked_add(a, b);
  if (!sum) throw_uncountable_parameters(m);
  return *sum;
}

// Parameters of one transformer layer, split into what tensor parallelism shards (the weights
// and column-parallel biases) and what every tensor rank keeps whole (norms, row-parallel biases).
struct LayerParameters {
  int64_t sharded = 0;
  int64_t replicated = 0;
};

int64_t norm_parameters(const ModelSpec& m) {
  return m.normalization == Normalization::layernorm ? parameter_product(m, 2, m.hidden_size) : m.hidden_size;
}

int64_t query_key_value_width(const ModelSpec& m) {
  return parameter_sum(m, m.hidden_size, parameter_product(m, parameter_product(m, 2, m.query_groups()), m.kv_channels()));
}

// Weights that take part in a matrix multiplication in one layer (per token: 2 FLOPs each).
int64_t layer_matmul_weights(const ModelSpec& m) {
  const int64_t h = m.hidden_size;
  const int64_t attention = parameter_sum(m, parameter_product(m, h, query_key_value_width(m)), parameter_product(m, h, h));
  const int64_t mlp_matrices = m.activation == Activation::swiglu ? 3 : 2;
  return parameter_sum(m, attention, parameter_product(m, parameter_product(m, mlp_matrices, h), m.ffn_hidden_size));
}

LayerParameters layer_parameters(const ModelSpec& m) {
  LayerParameters p;
  p.sharded = layer_matmul_weights(m);
  p.replicated = parameter_product(m, 2, norm_parameters(m));
  if (m.add_bias_linear) {
    const int64_t mlp_up_width =
        m.activation == Activation::swiglu ? parameter_product(m, 2, m.ffn_hidden_size) : m.ffn_hidden_size;
    // column-parallel biases, then row-parallel ones
    p.sharded = parameter_sum(m, p.sharded, parameter_sum(m, query_key_value_width(m), mlp_up_width));
    p.replicated = parameter_sum(m, p.replicated, parameter_product(m, 2, m.hidden_size));
  }
  return p;
}

// `vocab`: the rows counted, model_vocab_size(m) for the model alone, the padded size for a plan.
int64_t embedding_parameters(const ModelSpec& m, int64_t vocab) { return parameter_product(m, vocab, m.hidden_size); }

int64_t position_parameters(const ModelSpec& m) {
  return m.position_embedding == PositionEmbedding::learned_absolute ? parameter_product(m, m.seq_length, m.hidden_size)
                                                                      : 0;
}

// Forward FLOPs per token of one layer's attention core: Q·Kᵀ and scores·V over all s keys.
double attention_core_flops_per_token(const ModelSpec& m) {
  return 2.0 * 2.0 * double(m.seq_length) * double(m.num_attention_heads) * double(m.kv_channels());
}

double layer_forward_flops_per_token(const ModelSpec& m) {
  return 2.0 * double(layer_matmul_weights(m)) + attention_core_flops_per_token(m);
}

double logits_forward_flops_per_token(const ModelSpec& m, int64_t vocab) {
  return 2.0 * double(vocab) * double(m.hidden_size);
}

double model_flops_with_vocab(const ModelSpec& m, int64_t sequences, int64_t vocab) {
  const double tokens = double(sequences) * double(m.seq_length);
  const double forward = double(m.num_layers) * layer_forward_flops_per_token(m) + logits_forward_flops_per_token(m, vocab);
  return 3.0 * tokens * forward;
}

double hardware_flops_with_vocab(const ModelSpec& m, int64_t sequences, Recompute recompute, int64_t vocab) {
  const double tokens = double(sequences) * double(m.seq_length);
  double recomputed_per_token = 0.0;
  if (recompute == Recompute::selective) recomputed_per_token = attention_core_flops_per_token(m);
  if (recompute == Recompute::full) recomputed_per_token = layer_forward_flops_per_token(m);
  return model_flops_with_vocab(m, sequences, vocab) + tokens * double(m.num_layers) * recomputed_per_token;
}

}  // namespace

int64_t parameter_count(const ModelSpec& m) {
  const int64_t vocab = model_vocab_size(m);
  const LayerParameters layer = layer_parameters(m);
  int64_t total = parameter_sum(m, embedding_parameters(m, vocab), position_parameters(m));
  total = parameter_sum(m, total, parameter_product(m, m.num_layers, parameter_sum(m, layer.sharded, layer.replicated)));
  total = parameter_sum(m, total, norm_parameters(m));  // final norm
  if (m.untie_embeddings_and_output_weights) total = parameter_sum(m, total, embedding_parameters(m, vocab));
  return total;
}

double megatron_parameter_estimate(const ModelSpec& m) {
  const double L = double(m.num_layers), h = double(m.hidden_size);
  const double V = double(model_vocab_size(m)), s = double(m.seq_length);
  return 12.0 * L * h * h * (1.0 + 13.0 / (12.0 * h) + (V + s) / (12.0 * L * h));
}

double model_flops_per_step(const ModelSpec& m, int64_t sequences) {
  return model_flops_with_vocab(m, sequences, model_vocab_size(m));
}

double model_flops_per_step(const Plan& plan) {
  return model_flops_with_vocab(plan.model, plan.training.global_batch_size, plan.padded_vocab_size());
}

double hardware_flops_per_step(const ModelSpec& m, int64_t sequences, Recompute recompute) {
  return hardware_flops_with_vocab(m, sequences, recompute, model_vocab_size(m));
}

double hardware_flops_per_step(const Plan& plan) {
  // Selective recompute re-runs the unfused attention core only; with flash attention it re-runs nothing.
  const bool nothing_recomputed =
      plan.parallel.recompute == Recompute::selective && plan.parallel.attention_backend == AttentionBackend::flash;
  return hardware_flops_with_vocab(plan.model, plan.training.global_batch_size,
                                   nothing_recomputed ? Recompute::none : plan.parallel.recompute,
                                   plan.padded_vocab_size());
}

double megatron_model_flops_per_step(const ModelSpec& m, int64_t sequences) {
  const double B = double(sequences), s = double(m.seq_length), L = double(m.num_layers);
  const double h = double(m.hidden_size), V = double(model_vocab_size(m));
  return 72.0 * B * s * L * h * h * (1.0 + s / (6.0 * h) + V / (12.0 * h * L));
}

double megatron_full_recompute_flops_per_step(const ModelSpec& m, int64_t sequences) {
  const double B = double(sequences), s = double(m.seq_length), L = double(m.num_layers);
  const double h = double(m.hidden_size), V = double(model_vocab_size(m));
  return 96.0 * B * s * L * h * h * (1.0 + s / (6.0 * h) + V / (16.0 * h * L));
}

int64_t layer_parameters_per_device(const Plan& plan) {
  const LayerParameters layer = layer_parameters(plan.model);
  return layer.sharded / plan.parallel.tensor_parallel + layer.replicated;
}

int64_t input_parameters_per_device(const Plan& plan) {
  const ModelSpec& m = plan.model;
  return parameter_sum(m, embedding_parameters(m, plan.padded_vocab_size()) / plan.parallel.tensor_parallel,
                       position_parameters(m));
}

int64_t output_parameters_per_device(const Plan& plan) {
  const ModelSpec& m = plan.model;
  // The last stage needs the output projection: its own when untied; when tied and pp > 1,
  // Megatron keeps a copy of the word embedding there and syncs its gradient with stage 0.
  const bool holds_projection = m.untie_embeddings_and_output_weights || plan.parallel.pipeline_parallel > 1;
  const int64_t projection =
      holds_projection ? embedding_parameters(m, plan.padded_vocab_size()) / plan.parallel.tensor_parallel : 0;
  return parameter_sum(m, norm_parameters(m), projection);
}

int64_t parameters_per_device_on_stage(const Plan& plan, int64_t stage) {
  return parameters_per_device_on_stage(plan, stage, plan.pipeline_rank_layers()[size_t(stage)]);
}

int64_t parameters_per_device_on_stage(const Plan& plan, int64_t stage, int64_t stage_layers) {
  const ModelSpec& m = plan.model;
  int64_t parameters = parameter_product(m, stage_layers, layer_parameters_per_device(plan));
  if (stage == 0) parameters = parameter_sum(m, parameters, input_parameters_per_device(plan));
  if (stage == plan.parallel.pipeline_parallel - 1)
    parameters = parameter_sum(m, parameters, output_parameters_per_device(plan));
  return parameters;
}

std::vector<int64_t> parameters_per_device_by_stage(const Plan& plan) {
  std::vector<int64_t> stages;
  const std::vector<int64_t> layers = plan.pipeline_rank_layers();
  for (int64_t stage = 0; stage < plan.parallel.pipeline_parallel; ++stage)
    stages.push_back(parameters_per_device_on_stage(plan, stage, layers[size_t(stage)]));
  return stages;
}

}  // namespace loom::core
