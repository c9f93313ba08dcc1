#pragma once
// The vocabulary a model trains, by Megatron-LM's rule (megatron/training/tokenizer,
// _vocab_size_with_padding): the tokenizer's size rounded up to a multiple of
// make-vocab-size-divisible-by × tensor-model-parallel-size, so that each tensor rank holds an
// equal, aligned shard of the embedding. Written once, here: the simulator, the planner and the
// executor all ask these functions.

#include "core/model_spec.hpp"

#include <cstdint>

namespace loom::core {

// The embedding (and output layer) rows under `tensor_parallel`: the pinned padded-vocab-size when
// the model gives one, else vocab-size padded as Megatron pads it. GPT-2's 50257 tokens: 50304 at
// tp 1, 50432 at tp 2, 51200 at tp 8.
int64_t padded_vocab_size(const ModelSpec& model, int64_t tensor_parallel);

// The rows of the model alone, before a tensor-parallel size is known: the pinned
// padded-vocab-size when given (the same at every tp), else vocab-size unpadded (its padding
// depends on tp). Published parameter counts use it: GPT-2 124M has 124,439,808 with 50257 tokens.
int64_t model_vocab_size(const ModelSpec& model);

}  // namespace loom::core
