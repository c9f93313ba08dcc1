#include "executor/data/batches.hpp"

#include "core/error.hpp"  // loom::InvalidInput

namespace loom::exec {
namespace {

// splitmix64 (Steele, Lea, Flood 2014): a bijection on 64 bits whose output bits each depend
// on every input bit, so neighbouring (seed, step, row) triples land far apart in the corpus.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void require_positive(const char* name, int64_t value) {
  if (value < 1) throw InvalidInput("{} is {}; expected a positive number", name, value);
}

}  // namespace

int64_t batch_row_offset(uint64_t seed, int64_t step, int64_t row, int64_t corpus_size,
                         int64_t seq_length) {
  require_positive("sequence length", seq_length);
  if (corpus_size < seq_length + 1)
    throw InvalidInput("corpus of {} tokens is shorter than one row of {} (sequence length {} + 1)",
                       corpus_size, seq_length + 1, seq_length);
  const uint64_t starts = uint64_t(corpus_size - seq_length);
  const uint64_t hash = splitmix64(splitmix64(splitmix64(seed) ^ uint64_t(step)) ^ uint64_t(row));
  return int64_t(hash % starts);
}

std::vector<int32_t> global_batch_tokens(const TokenSource& tokens, uint64_t seed, int64_t step,
                                         int64_t batch_size, int64_t seq_length) {
  require_positive("batch size", batch_size);
  require_positive("sequence length", seq_length);
  if (step < 0) throw InvalidInput("step is {}; expected a non-negative step", step);
  if (tokens.size() < seq_length + 1)
    throw InvalidInput("{} is shorter than one row of {} tokens (sequence length {} + 1)",
                       tokens.description(), seq_length + 1, seq_length);
  const int64_t row_length = seq_length + 1;
  std::vector<int32_t> batch(size_t(batch_size * row_length));
  for (int64_t row = 0; row < batch_size; ++row) {
    const int64_t offset = batch_row_offset(seed, step, row, tokens.size(), seq_length);
    for (int64_t j = 0; j < row_length; ++j)
      batch[size_t(row * row_length + j)] = tokens.token(offset + j);
  }
  return batch;
}

std::span<const int32_t> row_block(std::span<const int32_t> rows, int64_t seq_length, int64_t parts,
                                   int64_t part) {
  require_positive("sequence length", seq_length);
  require_positive("number of parts", parts);
  const int64_t row_length = seq_length + 1;
  if (int64_t(rows.size()) % row_length != 0)
    throw InvalidInput("{} tokens are not whole rows of {} (sequence length {} + 1)", rows.size(),
                       row_length, seq_length);
  const int64_t row_count = int64_t(rows.size()) / row_length;
  if (row_count % parts != 0)
    throw InvalidInput("{} rows cannot be split into {} equal parts", row_count, parts);
  if (part < 0 || part >= parts)
    throw InvalidInput("part {} is out of range; expected 0 to {}", part, parts - 1);
  const int64_t block = row_count / parts * row_length;
  return rows.subspan(size_t(part * block), size_t(block));
}

InputsAndTargets split_inputs_targets(std::span<const int32_t> rows, int64_t seq_length) {
  const std::span<const int32_t> whole = row_block(rows, seq_length, 1, 0);  // checks the shape
  const int64_t row_length = seq_length + 1, row_count = int64_t(whole.size()) / row_length;
  InputsAndTargets split;
  split.inputs.reserve(size_t(row_count * seq_length));
  split.targets.reserve(size_t(row_count * seq_length));
  for (int64_t row = 0; row < row_count; ++row) {
    const auto first = whole.begin() + row * row_length;
    split.inputs.insert(split.inputs.end(), first, first + seq_length);
    split.targets.insert(split.targets.end(), first + 1, first + row_length);
  }
  return split;
}

}  // namespace loom::exec
