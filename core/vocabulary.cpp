#include "core/vocabulary.hpp"

#include "core/checked_arithmetic.hpp"
#include "core/error.hpp"

namespace loom::core {

int64_t padded_vocab_size(const ModelSpec& model, int64_t tensor_parallel) {
  if (model.padded_vocab_size) return *model.padded_vocab_size;
  const int64_t vocab = model.vocab_size.value_or(0);
  // Validated sizes stay far inside int64 (limits::kMaxPaddedVocab); a spec that skipped
  // validate() is refused rather than wrapped around.
  const std::optional<int64_t> multiple =
      checked_multiply(model.make_vocab_size_divisible_by, tensor_parallel);
  if (!multiple || *multiple <= 0 || vocab <= 0)
    throw InvalidInput(
        "vocab-size={} cannot be padded to a multiple of make-vocab-size-divisible-by={} × "
        "tensor-model-parallel-size={}",
        vocab, model.make_vocab_size_divisible_by, tensor_parallel);
  return ((vocab - 1) / *multiple + 1) * *multiple;  // rounded up; cannot pass vocab + multiple
}

int64_t model_vocab_size(const ModelSpec& model) {
  return model.padded_vocab_size.value_or(model.vocab_size.value_or(0));
}

}  // namespace loom::core
