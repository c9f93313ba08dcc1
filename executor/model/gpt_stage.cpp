#include "executor/model/gpt_stage.hpp"

#include "executor/model/activations.hpp"

#include "core/error.hpp"

#include <cmath>
#include <cstring>

namespace loom::exec {

GptStage::GptStage(const core::Plan& plan, int64_t pipeline_rank, TensorParallel tensor_parallel, Kernels& kernels,
                   Timers& timers, int64_t pad_to)
    : plan_(plan), pipeline_rank_(pipeline_rank), tp_(tensor_parallel), kernels_(kernels), timers_(timers) {
  const core::ModelSpec& m = plan.model;
  require_trainable_architecture(m);
  layers_per_chunk_ = m.num_layers / (plan.parallel.pipeline_parallel * plan.virtual_stages());
  vocab_shard_ = m.padded_vocab_size / tp_.size();
  declare_parameters();
  parameters_.finalize(tp_.rank(), tp_.size(), uint64_t(plan.training.seed), pad_to);
}

GptStage::~GptStage() = default;

bool GptStage::last_virtual(int64_t chunk) const {
  return chunk == plan_.virtual_stages() - 1 && pipeline_rank_ == plan_.parallel.pipeline_parallel - 1;
}

int64_t GptStage::first_layer(int64_t chunk) const {
  return (chunk * plan_.parallel.pipeline_parallel + pipeline_rank_) * layers_per_chunk_;
}

std::string GptStage::layer_name(int64_t layer, const char* part) const { return gpt2_layer_parameter_name(layer, part); }

int64_t GptStage::local_rows() const {
  const int64_t rows = plan_.parallel.micro_batch_size * plan_.model.seq_length;
  return tp_.sequence_parallel() ? rows / tp_.size() : rows;
}

void GptStage::declare_parameters() {
  std::vector<int64_t> layers;
  for (int64_t c = 0; c < plan_.virtual_stages(); ++c)
    for (int64_t l = first_layer(c); l < first_layer(c) + layers_per_chunk_; ++l) layers.push_back(l);
  declare_gpt2_parameters(parameters_, plan_.model, layers, has_embedding(), has_output_layer());
}

std::string gpt2_layer_parameter_name(int64_t layer, const char* part) { return fmt::format("h.{}.{}", layer, part); }

void require_trainable_architecture(const core::ModelSpec& m) {
  if (m.activation != core::Activation::gelu || m.normalization != core::Normalization::layernorm ||
      m.position_embedding != core::PositionEmbedding::learned_absolute || !m.add_bias_linear ||
      m.num_query_groups != m.num_attention_heads)
    throw InvalidInput("the executor trains GPT-2's architecture (GELU, LayerNorm, learned positions, biases, "
                       "multi-head attention); model '{}' differs",
                       m.name);
}

void declare_gpt2_parameters(ParameterStore& p, const core::ModelSpec& m, const std::vector<int64_t>& layers,
                             bool has_embedding, bool has_output_layer) {
  const int64_t h = m.hidden_size, f = m.ffn_hidden_size, V = m.padded_vocab_size;
  // GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/√(2L).
  const float init_std = 0.02f, residual_std = 0.02f / std::sqrt(2.0f * float(m.num_layers));
  auto layer_name = gpt2_layer_parameter_name;
  if (has_embedding) {
    p.declare("wte.weight", {V, h}, Sharding::vocab_rows, init_std);
    p.declare("wpe.weight", {m.seq_length, h}, Sharding::replicated, init_std);
  }
  for (const int64_t l : layers) {
    p.declare(layer_name(l, "ln_1.weight"), {h}, Sharding::replicated, 0, true, false);
    p.declare(layer_name(l, "ln_1.bias"), {h}, Sharding::replicated, 0, false, false);
    p.declare(layer_name(l, "attn.c_attn.weight"), {h, 3 * h}, Sharding::qkv_columns, init_std);
    p.declare(layer_name(l, "attn.c_attn.bias"), {3 * h}, Sharding::qkv_columns, 0, false, false);
    p.declare(layer_name(l, "attn.c_proj.weight"), {h, h}, Sharding::rows, residual_std);
    p.declare(layer_name(l, "attn.c_proj.bias"), {h}, Sharding::replicated, 0, false, false);
    p.declare(layer_name(l, "ln_2.weight"), {h}, Sharding::replicated, 0, true, false);
    p.declare(layer_name(l, "ln_2.bias"), {h}, Sharding::replicated, 0, false, false);
    p.declare(layer_name(l, "mlp.c_fc.weight"), {h, f}, Sharding::columns, init_std);
    p.declare(layer_name(l, "mlp.c_fc.bias"), {f}, Sharding::columns, 0, false, false);
    p.declare(layer_name(l, "mlp.c_proj.weight"), {f, h}, Sharding::rows, residual_std);
    p.declare(layer_name(l, "mlp.c_proj.bias"), {h}, Sharding::replicated, 0, false, false);
  }
  if (has_output_layer) {
    p.declare("ln_f.weight", {h}, Sharding::replicated, 0, true, false);
    p.declare("ln_f.bias", {h}, Sharding::replicated, 0, false, false);
    if (m.untie_embeddings_and_output_weights)
      p.declare("lm_head.weight", {V, h}, Sharding::vocab_rows, init_std);
    else if (!has_embedding)
      // Megatron's copy of the tied embedding on the last stage: initialised identically,
      // gradients summed with the first stage's; counted once in the gradient norm.
      p.declare("wte.weight", {V, h}, Sharding::vocab_rows, init_std, false, true, false);
  }
}

std::vector<Parameter> full_model_parameters(const core::ModelSpec& model) {
  require_trainable_architecture(model);
  std::vector<int64_t> layers(size_t(model.num_layers));
  for (int64_t l = 0; l < model.num_layers; ++l) layers[size_t(l)] = l;
  ParameterStore store;
  declare_gpt2_parameters(store, model, layers, true, true);
  return store.all();
}

Tensor GptStage::forward(int64_t microbatch, int64_t chunk, const Tensor& input, const int32_t* tokens,
                         const int32_t* targets) {
  auto saved = std::make_unique<ChunkActivations>();
  saved->layers.resize(size_t(layers_per_chunk_));
  Tensor x = first_virtual(chunk) ? embed(tokens, *saved) : input;
  const int64_t first = first_layer(chunk);
  for (int64_t l = 0; l < layers_per_chunk_; ++l) x = layer_forward(first + l, x, saved->layers[size_t(l)]);
  Tensor output;
  if (last_virtual(chunk)) output_forward(x, targets, *saved);
  else output = x;
  saved_[{microbatch, chunk}] = std::move(saved);
  return output;
}

Tensor GptStage::backward(int64_t microbatch, int64_t chunk, const Tensor& grad_output, float loss_scale) {
  auto it = saved_.find({microbatch, chunk});
  if (it == saved_.end()) throw Error("backward of microbatch {} chunk {} before its forward", microbatch, chunk);
  ChunkActivations& saved = *it->second;
  Tensor grad = last_virtual(chunk) ? output_backward(saved, loss_scale) : grad_output;
  const int64_t first = first_layer(chunk);
  // Each layer's activations go as soon as its backward is done: with full recompute only one
  // layer's recomputed activations are alive at a time, as the memory model assumes.
  for (int64_t l = layers_per_chunk_ - 1; l >= 0; --l) {
    grad = layer_backward(first + l, grad, saved.layers[size_t(l)]);
    saved.layers[size_t(l)] = LayerActivations{};
  }
  Tensor grad_input;
  if (first_virtual(chunk)) embed_backward(grad, saved);
  else grad_input = grad;
  saved_.erase(it);  // the activations are freed as soon as the schedule allows
  return grad_input;
}

}  // namespace loom::exec
