#pragma once
// The part of a decoder-only model (GPT-2 or Llama) one rank holds under a plan — its pipeline stage's model chunks
// (virtual stages), each a run of transformer layers, with the token and position embeddings on
// the first virtual stage and the final norm, output layer and loss on the last — and its
// forward and backward per (microbatch, chunk), keeping what the backward needs in between.
//
// GPT-2 exactly: pre-LayerNorm (eps 1e-5), learned positions, tanh GELU, attention scaled by
// 1/√d, final LayerNorm, output layer tied to the token embedding unless the plan unties it.
// Llama exactly (Hugging Face's LlamaForCausalLM): pre-RMSNorm (eps 1e-5), rotary positions in
// attention (the plan's rotary-base), grouped-query attention, SwiGLU MLP, no biases, final
// RMSNorm, output layer tied or not as the plan says. No dropout, so that every layout of a plan
// computes the same numbers as one rank.

#include "core/plan.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/model/model_parameters.hpp"
#include "executor/model/parameters.hpp"
#include "executor/model/precision.hpp"
#include "executor/model/stage_layers.hpp"
#include "executor/model/tensor_parallel.hpp"
#include "executor/timers/timer_stack.hpp"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace loom::exec {

// What the engine's overlapped data parallelism needs to see of a forward or a backward. Either
// may be empty.
struct ParameterHooks {
  // Before a forward reads these parameters' values (their gathered values must be in place).
  std::function<void(std::span<Parameter* const>)> before_reading;
  // After a backward has added its whole contribution to these parameters' gradients.
  std::function<void(std::span<Parameter* const>)> gradients_written;
};

struct LayerActivations;  // what one layer keeps for its backward
struct ChunkActivations;

class GptStage {
 public:
  // `pipeline_rank` chooses the chunks: chunk c is virtual stage c·p + pipeline_rank.
  GptStage(const core::Plan& plan, int64_t pipeline_rank, TensorParallel tensor_parallel, Kernels& kernels,
           TimerStack& timers, int64_t pad_to);
  ~GptStage();

  ParameterStore& parameters() { return parameters_; }
  const Precision& precision() const { return precision_; }
  bool has_embedding() const { return pipeline_rank_ == 0; }
  bool has_output_layer() const { return pipeline_rank_ == plan_.parallel.pipeline_parallel - 1; }
  int64_t local_rows() const;   // token rows of one microbatch on this rank ([b·s] or [b·s/t] with SP)
  int64_t hidden() const { return plan_.model.hidden_size; }

  // Forward(microbatch, chunk). `input` is the activation from the previous virtual stage (unused
  // on the first); tokens/targets are this microbatch's [b·s] int32 inputs and labels. Returns the
  // output activation for the next virtual stage (empty on the last, which instead adds the
  // microbatch's mean loss to loss_sum()).
  Tensor forward(int64_t microbatch, int64_t chunk, const Tensor& input, const int32_t* tokens, const int32_t* targets,
                 const ParameterHooks& hooks = {});
  // Backward(microbatch, chunk): `grad_output` is the gradient from the next virtual stage
  // (unused on the last). Returns the gradient of the chunk's input (empty on the first).
  // Gradients accumulate into parameters(); `loss_scale` multiplies the loss gradient.
  Tensor backward(int64_t microbatch, int64_t chunk, const Tensor& grad_output, float loss_scale,
                  const ParameterHooks& hooks = {});

  // The model chunk of each parameter of parameters(), by index.
  std::vector<int64_t> parameter_chunks() const;

  double loss_sum() const { return loss_sum_; }
  // The logits [b·s, vocab/t] the last virtual stage computed for a microbatch whose backward has
  // not run yet (checks against an independent implementation).
  Tensor saved_logits(int64_t microbatch, int64_t chunk) const;
  void reset_loss() { loss_sum_ = 0; }

 private:
  bool first_virtual(int64_t chunk) const { return chunk == 0 && pipeline_rank_ == 0; }
  bool last_virtual(int64_t chunk) const;
  // Chunk c's layers: layers_[chunk_begin_[c] .. chunk_begin_[c] + chunks_[c].count).
  std::span<const LayerParameters> layers_of(int64_t chunk) const;
  void declare_parameters();
  void resolve_parameters();
  // The output layer's parameters whose gradients output_backward completes: ln_f, and the head
  // unless it is also the embedding (pp = 1, tied), which embed_backward adds to.
  std::vector<Parameter*> parameters_done_by_output_backward() const;
  std::vector<Parameter*> embedding_members() const;     // tokens (and positions)
  std::vector<Parameter*> output_norm_members() const;   // the final norm's gain (and bias)

  Tensor embed(const int32_t* tokens, ChunkActivations& saved);
  Tensor embed_backward(const Tensor& grad, const ChunkActivations& saved);
  void norm_forward(const NormParameters& norm, const Tensor& x, Tensor& y, Tensor& mean, Tensor& rstd);
  void norm_backward(const NormParameters& norm, const Tensor& dy, const Tensor& x, const Tensor& mean,
                     const Tensor& rstd, Tensor& dx);
  void linear_forward(const LinearParameters& linear, const Tensor& x, Tensor& y);
  Tensor expanded_qkv(const Tensor& grouped);
  void linear_backward_input(const LinearParameters& linear, const Tensor& dy, Tensor& dx);
  void linear_backward_weight(const LinearParameters& linear, const Tensor& x, const Tensor& dy);
  // `keep_all` keeps every activation whatever the recompute mode (when recomputing).
  Tensor layer_forward(const LayerParameters& w, const Tensor& x, LayerActivations& saved, bool keep_all = false);
  Tensor layer_backward(const LayerParameters& w, const Tensor& grad, LayerActivations& saved);
  void output_forward(const Tensor& x, const int32_t* targets, ChunkActivations& saved);
  Tensor output_backward(const ChunkActivations& saved, float loss_scale);
  // Small f32 vectors (loss partials) between the kernels' device and the host.
  std::vector<float> host_floats(const Tensor& x);
  void upload_floats(const std::vector<float>& values, Tensor& x);

  const core::Plan& plan_;
  int64_t pipeline_rank_;
  TensorParallel tp_;
  Kernels& kernels_;
  Precision precision_;
  TimerStack& timers_;
  ParameterStore parameters_;
  // Each chunk's global layers (plan.virtual_stage_layers: uneven splits give chunks of different
  // sizes, and a first or last chunk may hold none).
  std::vector<ChunkLayers> chunks_;
  std::vector<int64_t> chunk_begin_;  // index into layers_ of each chunk's first layer
  // References into parameters_, resolved once it is finalized: this rank's layers in chunk
  // order, the embedding on the first stage, the output layer on the last.
  std::vector<LayerParameters> layers_;
  std::optional<EmbeddingParameters> embedding_;
  std::optional<OutputParameters> output_;
  int64_t vocab_shard_;  // vocabulary rows per tensor rank
  double loss_sum_ = 0;
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<ChunkActivations>> saved_;  // by (microbatch, chunk)
};

// InvalidInput unless the executor can train the model's architecture (GPT-2's or Llama's).
void require_trainable_architecture(const core::ModelSpec& model);

// The whole model's parameters as one rank of a one-rank plan declares them, without values:
// what a full model file (--init-from) must hold.
std::vector<Parameter> full_model_parameters(const core::ModelSpec& model);

}  // namespace loom::exec
