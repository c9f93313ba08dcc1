// Causal self-attention through the Kernels, called as executor/model/attention_core.cpp calls
// them, once per attention backend: unfused (attention_forward / attention_backward, saving the
// probabilities [b, heads, s, s]) and flash (flash_attention_forward / flash_attention_backward,
// saving the log-sum-exp [b, heads, s]); qkv [b, s, 3·heads·d], out [b, s, heads·d]. Both kernels
// loop over (micro-batch, head) pairs alike, so one micro-batch of `batch` heads stands for
// b × heads.

#include "executor/profile/measure.hpp"
#include "executor/profile/random_tensors.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace loom::exec::profile {
namespace {

struct PassTimes {
  Timing forward, backward;
};

PassTimes time_unfused(Kernels& kernels, const Tensor& qkv, const Tensor& dout, int64_t heads,
                       const TimingPolicy& policy) {
  const int64_t seq = qkv.dim(1), d = dout.dim(2) / heads;
  Tensor out({1, seq, heads * d}), probabilities({1, heads, seq, seq}), dqkv(qkv.shape());
  return {time_call([&] { kernels.attention_forward(qkv, heads, out, probabilities); }, policy),
          time_call([&] { kernels.attention_backward(dout, qkv, probabilities, heads, dqkv); },
                    policy)};
}

PassTimes time_flash(Kernels& kernels, const Tensor& qkv, const Tensor& dout, int64_t heads,
                     const TimingPolicy& policy) {
  const int64_t seq = qkv.dim(1), d = dout.dim(2) / heads;
  Tensor out({1, seq, heads * d}), log_sum_exp({1, heads, seq}), dqkv(qkv.shape());
  return {
      time_call([&] { kernels.flash_attention_forward(qkv, heads, out, log_sum_exp); }, policy),
      time_call(
          [&] { kernels.flash_attention_backward(dout, qkv, out, log_sum_exp, heads, dqkv); },
          policy)};
}

}  // namespace

void measure_attention(Kernels& kernels, const ProfileGrid& grid, Measured& measured) {
  RandomTensors random;
  const int64_t heads = grid.attention_batch;
  fmt::print("# attention, {} heads (fp32)\n#  seq  head_dim  backend   forward (us)  backward (us)\n",
             heads);
  for (int64_t seq : grid.attention_seq)
    for (int64_t d : grid.attention_head_dim) {
      const Tensor qkv = random.uniform({1, seq, 3 * heads * d}),
                   dout = random.uniform({1, seq, heads * d});
      for (const core::AttentionBackend backend :
           {core::AttentionBackend::unfused, core::AttentionBackend::flash}) {
        const PassTimes times = backend == core::AttentionBackend::flash
                                    ? time_flash(kernels, qkv, dout, heads, grid.timing)
                                    : time_unfused(kernels, qkv, dout, heads, grid.timing);
        for (const bool is_backward : {false, true}) {
          const Timing& t = is_backward ? times.backward : times.forward;
          measured.add(core::AttentionSample{.batch = heads,
                                             .seq = seq,
                                             .head_dim = d,
                                             .dtype = core::DType::fp32,
                                             .backward = is_backward,
                                             .time_s = t.median_s,
                                             .backend = backend},
                       t.spread);
        }
        fmt::print("{:>6} {:>9}  {:<8} {:>13.1f} {:>14.1f}\n", seq, d, core::to_string(backend),
                   times.forward.median_s * 1e6, times.backward.median_s * 1e6);
      }
    }
  std::fflush(stdout);
}

}  // namespace loom::exec::profile
