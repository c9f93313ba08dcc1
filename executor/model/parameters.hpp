#pragma once
// The GPT-2 parameters one rank holds, named as in Hugging Face's GPT-2 checkpoints, each with
// how tensor parallelism shards it. Values and gradients live in two flat buffers (views per
// parameter), so data-parallel reduction and ZeRO-1 sharding are single calls over one buffer.
//
// Mixed precision (Megatron's scheme): the flat values are the f32 MASTER weights the optimizer
// updates and checkpoints hold; gradients are f32 main gradients; when the compute type is bf16 a
// third flat buffer holds the bf16 WORKING copy the forward and backward read (Parameter::value),
// rewritten from the masters after every update. In f32, value and master are one tensor.
//
// Initialisation is a function of (seed, name) only: every rank generates a parameter's full
// tensor from its own random stream and keeps its shard, so every layout of a model starts from
// the same weights as the single-rank run.

#include "executor/kernels/kernels.hpp"
#include "executor/tensor.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace loom::exec {

enum class Sharding : uint8_t {
  replicated,  // every tensor rank holds all of it (norms, row-parallel biases, positions)
  vocab_rows,  // rows split over tensor ranks (token embedding, untied output layer)
  columns,     // last axis split (column-parallel weight and bias)
  qkv_columns, // last axis [q | k | v], each block split by heads
  rows,        // first axis split (row-parallel weight)
};

// What a parameter is to training; its initialisation, weight decay and place in the gradient
// norm follow from it (GPT-2's initialisation, Megatron's weight decay).
enum class ParameterKind : uint8_t {
  weight,               // a matrix (linear layer, embedding table): normal(0, init_std), decayed
  bias,                 // a linear layer's or LayerNorm's bias: zeros, not decayed
  norm_gain,            // LayerNorm's gain (Hugging Face's "…ln_1.weight"): ones, not decayed
  tied_embedding_copy,  // Megatron's copy of the tied embedding on the last stage: a weight, left
                        // out of the gradient norm (the first stage's copy counts it)
};

// AdamW's weight decay applies to matrices only.
bool takes_weight_decay(ParameterKind kind);

struct Parameter {
  std::string name;
  std::vector<int64_t> full_shape;
  std::vector<int64_t> local_shape;
  Sharding sharding = Sharding::replicated;
  ParameterKind kind = ParameterKind::weight;
  float init_std = 0;  // of the normal initialisation of weights
  // Counted in the global gradient norm by this rank (set by finalize): false for replicated
  // parameters on tensor ranks other than 0 and for the tied embedding's copy.
  bool counts_in_norm = true;
  int64_t offset = 0;  // elements into the flat buffers
  Tensor value;   // what kernels read: the working copy (compute type)
  Tensor master;  // f32 master weights (the same tensor as value in f32)
  Tensor grad;    // f32
};

class ParameterStore {
 public:
  // Declares a parameter (before finalize); `init_std` is given for the kinds that are weights
  // and only for them. Returns its index.
  size_t declare(std::string name, std::vector<int64_t> full_shape, Sharding sharding, ParameterKind kind,
                 float init_std = 0);
  // Allocates the flat buffers on the kernels' device (padded to a multiple of `pad_to`), computes
  // local shapes for this tensor rank, and initialises every value from `seed`. `compute_type`
  // (f32 or bf16) is the working copy's.
  void finalize(int64_t tensor_rank, int64_t tensor_size, uint64_t seed, int64_t pad_to, Kernels& kernels,
                ElementType compute_type);

  Parameter& operator[](const std::string& name);
  const Parameter& operator[](const std::string& name) const;
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  std::vector<Parameter>& all() { return parameters_; }
  const std::vector<Parameter>& all() const { return parameters_; }

  // Consecutive matrix parameters of equal local width as ONE [Σ rows, cols] tensor: their working
  // values, and their gradients (a fused GEMM operand such as Llama's q|k|v; see
  // llama_parameters.hpp). Throws unless they were declared one after another.
  Tensor joined_values(const std::vector<Parameter*>& parts) const;
  Tensor joined_grads(const std::vector<Parameter*>& parts) const;

  Tensor& flat_values() { return values_; }  // f32 masters
  Tensor& flat_grads() { return grads_; }
  int64_t padded_size() const { return padded_size_; }
  // The element ranges [begin, end) of the flat buffers that this rank counts in the global
  // gradient norm (Parameter::counts_in_norm), consecutive parameters merged: a handful of runs,
  // not a weight per element.
  const std::vector<std::pair<int64_t, int64_t>>& norm_runs() const { return norm_runs_; }
  ElementType compute_type() const { return compute_type_; }
  // The bf16 working copy's flat buffer, or null in f32.
  Tensor* working_values() { return working_.defined() ? &working_ : nullptr; }
  // Rewrites the working copy of master elements [begin, end) (after an update or a gather);
  // nothing in f32.
  void refresh_working_copy(int64_t begin, int64_t end);
  void refresh_working_copy() { refresh_working_copy(0, padded_size_); }

  // A parameter's master values on the host, and back (checkpoints, model files); writing
  // refreshes its working copy.
  std::vector<float> read_values(const Parameter& p) const;
  void write_values(Parameter& p, const std::vector<float>& values);

  // This rank's shard of a full tensor, and the inverse (for checkpoint interchange).
  static std::vector<float> shard(const std::vector<float>& full, const Parameter& p, int64_t tensor_rank,
                                  int64_t tensor_size);
  // The full tensor from every tensor rank's shard, concatenated in rank order.
  static std::vector<float> unshard(const std::vector<float>& gathered, const Parameter& p, int64_t tensor_size);

 private:
  Tensor joined(const Tensor& flat, const std::vector<Parameter*>& parts) const;

  std::vector<Parameter> parameters_;
  std::map<std::string, size_t> index_;
  Tensor values_, grads_, working_;
  std::vector<std::pair<int64_t, int64_t>> norm_runs_;
  int64_t padded_size_ = 0;
  ElementType compute_type_ = ElementType::f32;
  Kernels* kernels_ = nullptr;
};

// Deterministic standard normals for (seed, name), independent of platform and layout.
std::vector<float> normal_values(uint64_t seed, const std::string& name, int64_t count, float stddev);

}  // namespace loom::exec
