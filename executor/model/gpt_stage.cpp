#include "executor/model/gpt_stage.hpp"

#include "executor/model/activations.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace loom::exec {

GptStage::GptStage(const core::Plan& plan, int64_t pipeline_rank, TensorParallel tensor_parallel, Kernels& kernels,
                   TimerStack& timers, int64_t pad_to)
    : plan_(plan),
      pipeline_rank_(pipeline_rank),
      tp_(tensor_parallel),
      kernels_(kernels),
      precision_{compute_type_for(plan, kernels), kernels.device()},
      timers_(timers) {
  const core::ModelSpec& m = plan.model;
  require_trainable_architecture(m);
  chunks_ = chunk_layers(plan, pipeline_rank);
  for (int64_t at = 0; const ChunkLayers& chunk : chunks_) {
    chunk_begin_.push_back(at);
    at += chunk.count;
  }
  vocab_shard_ = plan.padded_vocab_size() / tp_.size();
  declare_parameters();
  parameters_.finalize(tp_.rank(), tp_.size(), uint64_t(plan.training.seed), pad_to, kernels, precision_.compute);
  resolve_parameters();
}

GptStage::~GptStage() = default;

bool GptStage::last_virtual(int64_t chunk) const {
  return chunk == plan_.virtual_stages() - 1 && pipeline_rank_ == plan_.parallel.pipeline_parallel - 1;
}

std::span<const LayerParameters> GptStage::layers_of(int64_t chunk) const {
  return std::span<const LayerParameters>(layers_).subspan(size_t(chunk_begin_[size_t(chunk)]),
                                                           size_t(chunks_[size_t(chunk)].count));
}

int64_t GptStage::local_rows() const {
  const int64_t rows = plan_.parallel.micro_batch_size * plan_.model.seq_length;
  return tp_.sequence_parallel() ? rows / tp_.size() : rows;
}

void GptStage::declare_parameters() {
  declare_model_parameters(parameters_, plan_.trained_model(), stage_layers(plan_, pipeline_rank_), has_embedding(),
                           has_output_layer());
}

void GptStage::resolve_parameters() {
  for (const int64_t layer : stage_layers(plan_, pipeline_rank_))
    layers_.push_back(layer_parameters(parameters_, plan_.model, layer));
  if (has_embedding()) embedding_.emplace(embedding_parameters(parameters_, plan_.model));
  if (has_output_layer()) output_.emplace(output_parameters(parameters_, plan_.model));
}

void require_trainable_architecture(const core::ModelSpec& m) {
  architecture_of(m);
  if (m.position_embedding == core::PositionEmbedding::rope && m.kv_channels() % 2 != 0)
    throw InvalidInput("rotary positions turn pairs of a head's channels; model '{}' has heads of {} channels "
                       "(hidden-size / num-attention-heads), expected an even number",
                       m.name, m.kv_channels());
}

std::vector<Parameter> full_model_parameters(const core::ModelSpec& model) {
  require_trainable_architecture(model);
  std::vector<int64_t> layers(size_t(model.num_layers));
  for (int64_t l = 0; l < model.num_layers; ++l) layers[size_t(l)] = l;
  ParameterStore store;
  declare_model_parameters(store, model, layers, true, true);
  return store.all();
}

Tensor GptStage::forward(int64_t microbatch, int64_t chunk, const Tensor& input, const int32_t* tokens,
                         const int32_t* targets, const ParameterHooks& hooks) {
  auto before_reading = [&](const std::vector<Parameter*>& parameters) {
    if (hooks.before_reading) hooks.before_reading(parameters);
  };
  auto saved = std::make_unique<ChunkActivations>();
  const std::span<const LayerParameters> in_chunk = layers_of(chunk);
  saved->layers.resize(in_chunk.size());
  Tensor x = input;
  if (first_virtual(chunk)) {
    if (hooks.before_reading) before_reading(embedding_members());
    x = embed(tokens, *saved);
  }
  for (size_t l = 0; l < in_chunk.size(); ++l) {
    if (hooks.before_reading) before_reading(parameters_of(in_chunk[l]));
    x = layer_forward(in_chunk[l], x, saved->layers[l]);
  }
  Tensor output;
  if (last_virtual(chunk)) {
    if (hooks.before_reading) {
      std::vector<Parameter*> read = output_norm_members();
      read.push_back(&output_->head);
      before_reading(read);
    }
    output_forward(x, targets, *saved);
  } else {
    output = x;
  }
  saved_[{microbatch, chunk}] = std::move(saved);
  return output;
}

Tensor GptStage::backward(int64_t microbatch, int64_t chunk, const Tensor& grad_output, float loss_scale,
                          const ParameterHooks& hooks) {
  auto gradients_written = [&](const std::vector<Parameter*>& parameters) {
    if (hooks.gradients_written) hooks.gradients_written(parameters);
  };
  auto it = saved_.find({microbatch, chunk});
  if (it == saved_.end()) throw Error("backward of microbatch {} chunk {} before its forward", microbatch, chunk);
  ChunkActivations& saved = *it->second;
  Tensor grad = grad_output;
  if (last_virtual(chunk)) {
    grad = output_backward(saved, loss_scale);
    if (hooks.gradients_written) gradients_written(parameters_done_by_output_backward());
  }
  const std::span<const LayerParameters> in_chunk = layers_of(chunk);
  // Each layer's activations go as soon as its backward is done: with full recompute only one
  // layer's recomputed activations are alive at a time, as the memory model assumes.
  for (size_t l = in_chunk.size(); l-- > 0;) {
    grad = layer_backward(in_chunk[l], grad, saved.layers[l]);
    saved.layers[l] = LayerActivations{};
    if (hooks.gradients_written) gradients_written(parameters_of(in_chunk[l]));
  }
  Tensor grad_input;
  if (first_virtual(chunk)) {
    embed_backward(grad, saved);
    if (hooks.gradients_written) gradients_written(embedding_members());
  } else {
    grad_input = grad;
  }
  saved_.erase(it);  // the activations are freed as soon as the schedule allows
  return grad_input;
}

Tensor GptStage::saved_logits(int64_t microbatch, int64_t chunk) const {
  auto it = saved_.find({microbatch, chunk});
  if (it == saved_.end() || !it->second->logits.defined())
    throw Error("no logits saved for microbatch {} chunk {} on this rank", microbatch, chunk);
  return it->second->logits;
}

std::vector<Parameter*> GptStage::parameters_done_by_output_backward() const {
  std::vector<Parameter*> done = output_norm_members();
  if (!embedding_ || &embedding_->tokens != &output_->head) done.push_back(&output_->head);
  return done;
}

std::vector<Parameter*> GptStage::embedding_members() const {
  std::vector<Parameter*> members = {&embedding_->tokens};
  if (embedding_->positions) members.push_back(embedding_->positions);
  return members;
}

std::vector<Parameter*> GptStage::output_norm_members() const {
  std::vector<Parameter*> members = {output_->norm.gain};
  if (output_->norm.bias) members.push_back(output_->norm.bias);
  return members;
}

std::vector<int64_t> GptStage::parameter_chunks() const {
  const std::vector<Parameter>& all = parameters_.all();
  std::vector<int64_t> chunks(all.size(), -1);
  auto set = [&](const Parameter& p, int64_t chunk) { chunks[size_t(&p - all.data())] = chunk; };
  if (embedding_)
    for (const Parameter* p : embedding_members()) set(*p, 0);
  for (int64_t c = 0; c < int64_t(chunks_.size()); ++c)
    for (const LayerParameters& layer : layers_of(c))
      for (const Parameter* p : parameters_of(layer)) set(*p, c);
  if (output_) {
    for (const Parameter* p : output_norm_members()) set(*p, plan_.virtual_stages() - 1);
    // The tied head on one stage is the embedding, used first by chunk 0 (and there is one chunk).
    if (!embedding_ || &embedding_->tokens != &output_->head) set(output_->head, plan_.virtual_stages() - 1);
  }
  if (std::find(chunks.begin(), chunks.end(), -1) != chunks.end())
    throw Error("GptStage: a parameter of this rank belongs to no chunk");
  return chunks;
}

}  // namespace loom::exec
