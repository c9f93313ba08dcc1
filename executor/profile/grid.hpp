#pragma once
// What `loom-exec profile` measures: the sizes of every table, chosen from the shapes the
// executor's own calls take for the models a CPU, or a GPU, can train (grid.cpp says which),
// and how long it may spend on each.

#include "executor/profile/timing.hpp"

#include <cstdint>
#include <vector>

namespace loom::exec::profile {

struct ProfileGrid {
  // GEMMs: one full grid per layout (the simulator interpolates trilinearly only on full grids).
  // Tokens per microbatch (b·s) are C's rows m in the forward ("nn") and data-gradient ("nt")
  // GEMMs and the reduction depth k of weight gradients ("tn"); weight widths are the other two
  // axes, and vocabulary shards join the one axis where each layout puts the vocabulary.
  std::vector<int64_t> gemm_tokens, gemm_widths, gemm_vocab;
  // Causal attention of attention_batch heads (micro-batch × heads) by sequence and head size.
  int64_t attention_batch = 8;
  std::vector<int64_t> attention_seq, attention_head_dim;
  // Memory-bound kernels: one activation (of the compute type) of these sizes, rows of
  // activation_width.
  std::vector<int64_t> activation_bytes;
  int64_t activation_width = 256;
  // Embedding lookups into a table of embedding_vocab rows; positions repeat every
  // embedding_positions rows.
  int64_t embedding_vocab = 50304, embedding_positions = 1024;
  // Cross-entropy over cross_entropy_tokens rows of each vocabulary shard.
  int64_t cross_entropy_tokens = 1024;
  std::vector<int64_t> vocab_shards;
  // Collectives from 1 KiB up to this, in ×4 steps.
  int64_t largest_message_bytes = 0;
  TimingPolicy timing;
};

ProfileGrid profile_grid(bool quick);
// The grid of a GPU (the CUDA backend, in bf16): sizes of GPT models a GPU trains, far beyond
// the CPU's; `quick` stays under a minute on one H100.
ProfileGrid gpu_profile_grid(bool quick);
// Sizes between the quick grid's points on every axis (and none of them on it): a profile of
// these, compared with what the quick profile predicts for them, shows how well interpolation
// works (`loom bench fidelity`).
ProfileGrid off_grid();

// Group sizes for the collectives among `world_size` ranks: every size from 2 on a node of up
// to 8 ranks; beyond, the powers of two and the world itself.
std::vector<int> collective_group_sizes(int world_size);

}  // namespace loom::exec::profile
