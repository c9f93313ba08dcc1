#include "executor/model/attention_core.hpp"

namespace loom::exec {

void AttentionCore::forward(LayerActivations& a) const {
  Tensor attention = rows_view(a.attention);
  if (backend_ == core::AttentionBackend::flash) {
    a.log_sum_exp = precision_.f32({batch_, heads_, seq_});
    kernels_.flash_attention_forward(qkv_view(a.qkv), heads_, attention, a.log_sum_exp);
  } else {
    a.probabilities = precision_.activation({batch_, heads_, seq_, seq_});
    kernels_.attention_forward(qkv_view(a.qkv), heads_, attention, a.probabilities);
  }
}

void AttentionCore::drop_for_selective_recompute(LayerActivations& a) const {
  a.probabilities = Tensor();
}

bool AttentionCore::needs_recompute(const LayerActivations& a) const {
  return backend_ == core::AttentionBackend::unfused && !a.probabilities.defined();
}

// The output is recomputed too (the kernel writes both) but thrown away: the saved one is
// bit-identical, and it is what the output projection's weight gradient already used.
void AttentionCore::recompute(LayerActivations& a) const {
  a.probabilities = precision_.activation({batch_, heads_, seq_, seq_});
  Tensor attention = precision_.activation({batch_, seq_, width_});
  kernels_.attention_forward(qkv_view(a.qkv), heads_, attention, a.probabilities);
}

Tensor AttentionCore::backward(const Tensor& dattention, const LayerActivations& a) const {
  Tensor dqkv = precision_.activation({batch_ * seq_, 3 * width_});
  Tensor dqkv3 = qkv_view(dqkv);
  if (backend_ == core::AttentionBackend::flash)
    kernels_.flash_attention_backward(rows_view(dattention), qkv_view(a.qkv), rows_view(a.attention), a.log_sum_exp,
                                      heads_, dqkv3);
  else
    kernels_.attention_backward(rows_view(dattention), qkv_view(a.qkv), a.probabilities, heads_, dqkv3);
  return dqkv;
}

}  // namespace loom::exec
