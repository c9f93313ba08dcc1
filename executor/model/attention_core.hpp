#pragma once
// A transformer layer's attention core, softmax(q·kᵀ/√d)·v over its qkv, run by the plan's
// attention backend. The backends differ in what the forward keeps for the backward: unfused
// keeps the probabilities [b, a/t, s, s]; flash keeps each row's log-sum-exp [b, a/t, s] and
// allocates nothing of size s², so a layer's saved activations lose their s² term (Korthikanti
// et al. 2022's 5·a·s/h part) as they do under selective recompute, without recomputing.

#include "core/enums.hpp"
#include "executor/kernels/kernels.hpp"
#include "executor/model/activations.hpp"
#include "executor/model/precision.hpp"

#include <cstdint>

namespace loom::exec {

class AttentionCore {
 public:
  // `heads` and `width` (= heads · head_dim) are this tensor rank's: a/t and h/t.
  AttentionCore(Kernels& kernels, const Precision& precision, core::AttentionBackend backend, int64_t batch,
                int64_t seq, int64_t heads, int64_t width)
      : kernels_(kernels),
        precision_(precision),
        backend_(backend),
        batch_(batch),
        seq_(seq),
        heads_(heads),
        width_(width) {}

  // a.attention [b·s, width] from a.qkv, saving a.probabilities (unfused) or a.log_sum_exp (flash).
  void forward(LayerActivations& a) const;
  // Selective recompute drops the s² probabilities; flash's log-sum-exp (b·a·s values) is kept,
  // as recomputing it would cost a whole forward of the core to save almost nothing.
  void drop_for_selective_recompute(LayerActivations& a) const;
  // Whether the backward needs the core's forward again first (recompute()).
  bool needs_recompute(const LayerActivations& a) const;
  void recompute(LayerActivations& a) const;
  // The gradient of a.qkv, [b·s, 3·width], from the gradient of a.attention.
  Tensor backward(const Tensor& dattention, const LayerActivations& a) const;

 private:
  Tensor qkv_view(const Tensor& qkv) const { return qkv.reshaped({batch_, seq_, 3 * width_}); }
  Tensor rows_view(const Tensor& rows) const { return rows.reshaped({batch_, seq_, width_}); }

  Kernels& kernels_;
  const Precision& precision_;
  core::AttentionBackend backend_;
  int64_t batch_, seq_, heads_, width_;
};

}  // namespace loom::exec
