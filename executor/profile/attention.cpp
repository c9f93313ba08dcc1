// Causal self-attention through the Kernels, called as executor/model/attention_core.cpp calls
// them, once per attention backend: unfused (attention_forward / attention_backward, saving the
// probabilities [b, heads, s, s]) and flash (flash_attention_forward / flash_attention_backward,
// saving the log-sum-exp [b, heads, s]); qkv [b, s, 3·heads·d], out [b, s, heads·d], in
// profiled_type (the log-sum-exp in fp32). Both kernels loop over (micro-batch, head) pairs
// alike, so one micro-batch of `batch` heads stands for b × heads.

#include "executor/profile/measure.hpp"
#include "executor/profile/random_tensors.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace loom::exec::profile {
namespace {

struct PassTimes {
  Timing forward, backward;
};

PassTimes time_unfused(Kernels& kernels, KernelTimer& timer, const Tensor& qkv, const Tensor& dout, int64_t heads) {
  const int64_t seq = qkv.dim(1), d = dout.dim(2) / heads;
  const ElementType type = qkv.type();
  Tensor out({1, seq, heads * d}, type, kernels.device()), probabilities({1, heads, seq, seq}, type, kernels.device()),
      dqkv(qkv.shape(), type, kernels.device());
  return {timer([&] { kernels.attention_forward(qkv, heads, out, probabilities); }),
          timer([&] { kernels.attention_backward(dout, qkv, probabilities, heads, dqkv); })};
}

PassTimes time_flash(Kernels& kernels, KernelTimer& timer, const Tensor& qkv, const Tensor& dout, int64_t heads) {
  const int64_t seq = qkv.dim(1), d = dout.dim(2) / heads;
  const ElementType type = qkv.type();
  Tensor out({1, seq, heads * d}, type, kernels.device()),
      log_sum_exp({1, heads, seq}, ElementType::f32, kernels.device()), dqkv(qkv.shape(), type, kernels.device());
  return {timer([&] { kernels.flash_attention_forward(qkv, heads, out, log_sum_exp); }),
          timer([&] { kernels.flash_attention_backward(dout, qkv, out, log_sum_exp, heads, dqkv); })};
}

}  // namespace

void measure_attention(Kernels& kernels, const ProfileGrid& grid, Measured& measured) {
  RandomTensors random(kernels);
  KernelTimer timer(kernels, grid.timing);
  const ElementType type = profiled_type(kernels);
  const int64_t heads = grid.attention_batch;
  fmt::print("# attention, {} heads ({})\n#  seq  head_dim  backend   forward (us)  backward (us)\n", heads,
             core::to_string(dtype_of(type)));
  for (int64_t seq : grid.attention_seq)
    for (int64_t d : grid.attention_head_dim) {
      const Tensor qkv = random.uniform({1, seq, 3 * heads * d}, type),
                   dout = random.uniform({1, seq, heads * d}, type);
      for (const core::AttentionBackend backend : {core::AttentionBackend::unfused, core::AttentionBackend::flash}) {
        const PassTimes times = backend == core::AttentionBackend::flash
                                    ? time_flash(kernels, timer, qkv, dout, heads)
                                    : time_unfused(kernels, timer, qkv, dout, heads);
        for (const bool is_backward : {false, true}) {
          const Timing& t = is_backward ? times.backward : times.forward;
          measured.add(core::AttentionSample{.batch = heads,
                                             .seq = seq,
                                             .head_dim = d,
                                             .dtype = dtype_of(type),
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
