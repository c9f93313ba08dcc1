// The profile's sizes come from the two kinds of model Loom trains on a CPU:
//   loom-tiny    hidden 128, ffn 512, vocabulary 512, sequence 256;
//   GPT-2 124M   hidden 768, ffn 3072, vocabulary 50304 (padded), sequence 1024;
// with tensor parallelism t dividing the widths (3·h/t, h/t, f/t, V/t). Beyond a table's edges
// the simulator holds GEMM throughput constant and extends kernel times in proportion to bytes,
// so the largest sizes need only reach the saturated regime, not every shape a model has.

#include "executor/profile/grid.hpp"

namespace loom::exec::profile {

ProfileGrid profile_grid(bool quick) {
  ProfileGrid grid;
  if (quick) {
    // Tokens: 128 to 2048 span loom-tiny's micro-batches (256 · 1…8) and GPT-2's 1024. Widths:
    // loom-tiny's 128 and 512, and around them the tp-split and GPT-2 widths. Vocabulary: 8192
    // stands for GPT-2's shards (at 2048 tokens, "nt" ran within 2 % of its 2048-wide rate).
    // (Tokens up to 8192 took the GEMMs from 15 s to 44 s on a 2-core machine: over a minute
    // in all with 4 ranks.)
    grid.gemm_tokens = {128, 512, 2048};
    grid.gemm_widths = {32, 128, 512, 2048};
    grid.gemm_vocab = {8192};
    grid.attention_seq = {64, 256, 1024};
    grid.attention_head_dim = {32, 64, 128};
    grid.activation_bytes = {64 << 10, 1 << 20, 16 << 20, 128 << 20};
    grid.vocab_shards = {128, 512, 8192, 50304};
    grid.largest_message_bytes = int64_t(16) << 20;
    grid.timing.min_repeats = 3;
    return grid;
  }
  // Tokens: micro-batches of loom-tiny (×256) and GPT-2 (×1024) from 64 to 8192.
  grid.gemm_tokens = {64, 128, 256, 512, 1024, 2048, 4096, 8192};
  // Widths from loom-tiny's h/t at tp 4 (32) to GPT-2's 3·h/t and f/t at small t (2048, held
  // beyond); vocabulary shards of GPT-2 at tp 8 (6288 → 8192) up to the whole (50304 → 65536).
  grid.gemm_widths = {32, 128, 512, 2048};
  grid.gemm_vocab = {8192, 65536};
  grid.attention_seq = {64, 128, 256, 512, 1024};
  grid.attention_head_dim = {16, 32, 64, 128};
  // From inside a core's L2 cache to far beyond the last-level cache.
  grid.activation_bytes = {64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 128 << 20};
  grid.vocab_shards = {128, 512, 2048, 8192, 25152, 50304};  // loom-tiny at tp 4 … GPT-2 at tp 1
  grid.largest_message_bytes = int64_t(256) << 20;
  return grid;
}

// A GPU trains GPT-2 and GPT-3 sizes: micro-batches of 1 to 16 sequences of 1024 to 4096
// tokens, hidden sizes 768 to 12288 split by tp up to 8 (3·h/t, h/t, f/t), vocabulary shards
// of 50304 / t. Small shapes leave most SMs idle, so the grids reach far below and above them.
ProfileGrid gpu_profile_grid(bool quick) {
  ProfileGrid grid;
  // Heads of 8 micro-batch sequences × 16 heads: enough (head, query block) pairs to fill the
  // SMs, as a training step's attention does; 8 heads would measure an idle GPU.
  grid.attention_batch = 128;
  grid.attention_head_dim = {64, 128};  // GPT-2's and GPT-3's (≥ 1.3B) and Llama's
  // Rows of GPT-2 124M's hidden size and above; the embedding and the cross-entropy of GPT-2's
  // vocabulary at its sequence length, over a micro-batch of 8.
  grid.activation_width = 1024;
  grid.cross_entropy_tokens = 8192;
  if (quick) {
    grid.gemm_tokens = {1024, 4096, 16384};
    grid.gemm_widths = {256, 1024, 4096, 16384};
    grid.gemm_vocab = {32768};
    grid.attention_seq = {512, 1024, 2048};
    grid.activation_bytes = {1 << 20, 16 << 20, 256 << 20};
    grid.vocab_shards = {512, 8192, 50304};
    grid.largest_message_bytes = int64_t(64) << 20;
    grid.timing.min_repeats = 3;
    return grid;
  }
  grid.gemm_tokens = {256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  grid.gemm_widths = {128, 256, 512, 1024, 2048, 4096, 8192, 16384};
  grid.gemm_vocab = {32768, 65536};
  grid.attention_seq = {256, 512, 1024, 2048, 4096};
  // From a few thousand elements (launch-bound) to far beyond the 50 MiB L2 cache.
  grid.activation_bytes = {64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30};
  grid.vocab_shards = {512, 2048, 6288, 12576, 25152, 50304};  // GPT-2's shards at tp 8 … 1
  grid.largest_message_bytes = int64_t(1) << 30;
  return grid;
}

ProfileGrid off_grid() {
  ProfileGrid grid;
  grid.gemm_tokens = {256, 1024};          // between 128, 512 and 2048
  grid.gemm_widths = {64, 384, 1536};      // between 32, 128, 512 and 2048 (384 = loom-tiny's 3·h)
  grid.gemm_vocab = {3072};                // between 2048 and 8192
  grid.attention_seq = {128, 512};         // between 64, 256 and 1024
  grid.attention_head_dim = {48, 96};      // between 32, 64 and 128
  grid.activation_bytes = {256 << 10, 4 << 20, 48 << 20};
  grid.vocab_shards = {256, 2048, 25152};
  grid.largest_message_bytes = int64_t(64) << 10;  // collectives are not what this grid checks
  grid.timing.min_repeats = 3;
  return grid;
}

std::vector<int> collective_group_sizes(int world_size) {
  std::vector<int> sizes;
  for (int g = 2; g <= world_size; ++g)
    if (world_size <= 8 || (g & (g - 1)) == 0 || g == world_size) sizes.push_back(g);
  return sizes;
}

}  // namespace loom::exec::profile
