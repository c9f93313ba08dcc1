// Causal self-attention through Kernels::attention_forward and attention_backward, called as
// layer_forward and layer_backward call them: qkv [b, s, 3·heads·d], out [b, s, heads·d],
// probabilities [b, heads, s, s] saved by the forward for the backward. The kernel loops over
// (micro-batch, head) pairs alike, so one micro-batch of `batch` heads stands for b × heads.

#include "executor/profile/measure.hpp"
#include "executor/profile/random_tensors.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace loom::exec::profile {

void measure_attention(Kernels& kernels, const ProfileGrid& grid, Measured& measured) {
  RandomTensors random;
  const int64_t heads = grid.attention_batch;
  fmt::print("# attention, {} heads (fp32)\n#  seq  head_dim   forward (us)  backward (us)\n",
             heads);
  for (int64_t seq : grid.attention_seq)
    for (int64_t d : grid.attention_head_dim) {
      const Tensor qkv = random.uniform({1, seq, 3 * heads * d}),
                   dout = random.uniform({1, seq, heads * d});
      Tensor out({1, seq, heads * d}), probabilities({1, heads, seq, seq}),
          dqkv({1, seq, 3 * heads * d});
      const Timing forward = time_call(
          [&] { kernels.attention_forward(qkv, heads, out, probabilities); }, grid.timing);
      const Timing backward = time_call(
          [&] { kernels.attention_backward(dout, qkv, probabilities, heads, dqkv); }, grid.timing);
      for (const bool is_backward : {false, true}) {
        const Timing& t = is_backward ? backward : forward;
        measured.add(core::AttentionSample{.batch = heads,
                                           .seq = seq,
                                           .head_dim = d,
                                           .dtype = core::DType::fp32,
                                           .backward = is_backward,
                                           .time_s = t.median_s},
                     t.spread);
      }
      fmt::print("{:>6} {:>9} {:>14.1f} {:>14.1f}\n", seq, d, forward.median_s * 1e6,
                 backward.median_s * 1e6);
    }
  std::fflush(stdout);
}

}  // namespace loom::exec::profile
