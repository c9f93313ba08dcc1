#pragma once
// Deterministic batches: step t's global batch is a pure function of (corpus, seed, t, batch
// size, sequence length). Nothing about the plan enters it, so every layout of one model
// (dp2, tp2, pp2 …) trains on exactly the same tokens and their losses can be compared; and a
// resumed run needs only the step number to continue where it stopped.
//
// A global batch is `batch_size` rows of `seq_length + 1` consecutive corpus tokens, row after
// row: a row's first seq_length tokens are the inputs and its last seq_length the targets (the
// inputs shifted by one). Data-parallel rank r takes rows [r·B/dp, (r+1)·B/dp); microbatch m
// of those rows is again a contiguous block.

#include "executor/data/token_source.hpp"  // TokenSource

#include <cstdint>  // int32_t, int64_t, uint64_t
#include <span>     // slices of a batch, without copying
#include <vector>   // std::vector

namespace loom::exec {

// The corpus position where row `row` of step `step` starts: splitmix64 of (seed, step, row),
// reduced modulo the number of valid starts, corpus_size − seq_length (the modulo bias,
// starts/2^64, is below 2^-24 for any corpus under 2^40 tokens). Throws InvalidInput when the
// corpus holds fewer than seq_length + 1 tokens.
int64_t batch_row_offset(uint64_t seed, int64_t step, int64_t row, int64_t corpus_size,
                         int64_t seq_length);

// batch_size × (seq_length + 1) tokens, row-major. Throws InvalidInput for a corpus shorter
// than one row (naming the corpus and both lengths) or non-positive sizes.
std::vector<int32_t> global_batch_tokens(const TokenSource& tokens, uint64_t seed, int64_t step,
                                         int64_t batch_size, int64_t seq_length);

// Rows [part·R/parts, (part+1)·R/parts) of a block of R rows of seq_length + 1 tokens: the
// rows one data-parallel rank trains on, or one microbatch of those. A row count that `parts`
// does not divide is InvalidInput (the plan's validation should have refused it earlier).
std::span<const int32_t> row_block(std::span<const int32_t> rows, int64_t seq_length, int64_t parts,
                                   int64_t part);

inline std::span<const int32_t> data_parallel_rows(std::span<const int32_t> global_batch,
                                                   int64_t seq_length, int64_t dp_size,
                                                   int64_t dp_rank) {
  return row_block(global_batch, seq_length, dp_size, dp_rank);
}

inline std::span<const int32_t> microbatch_rows(std::span<const int32_t> rank_rows,
                                                int64_t seq_length, int64_t microbatches,
                                                int64_t microbatch) {
  return row_block(rank_rows, seq_length, microbatches, microbatch);
}

// Rows of seq_length + 1 tokens split into what the model reads and what it must predict,
// each rows × seq_length, row-major.
struct InputsAndTargets {
  std::vector<int32_t> inputs;
  std::vector<int32_t> targets;
};
InputsAndTargets split_inputs_targets(std::span<const int32_t> rows, int64_t seq_length);

}  // namespace loom::exec
