#pragma once
// What the forward of a model chunk keeps for its backward (private to executor/model).

#include "executor/tensor.hpp"

#include <vector>

namespace loom::exec {

struct LayerActivations {
  Tensor input;                      // [rows_local, h]: all that full recompute keeps
  Tensor ln1, ln1_mean, ln1_rstd;    // [rows_local, h], [rows_local] (no mean with RMSNorm)
  Tensor ln1_full;                   // [rows, h]; with sequence parallelism dropped after use, gathered again
  Tensor qkv;                        // [rows, 3h/t], one k and v per query head
  Tensor qkv_grouped;                // [rows, (a + 2g)·d/t] with grouped-query attention, in qkv's place
  Tensor probabilities;              // [b, a/t, s, s] (unfused): dropped by selective recompute
  Tensor log_sum_exp;                // [b, a/t, s] (flash), kept in their place
  Tensor attention;                  // [rows, h/t]
  Tensor after_attention;            // [rows_local, h]
  Tensor ln2, ln2_mean, ln2_rstd, ln2_full;
  Tensor fc;                         // [rows, f/t] before GELU; SwiGLU's [gate | up], [rows, 2f/t]
  Tensor gelu;                       // [rows, f/t]: the activation's output (GELU or SwiGLU)
  bool complete = false;             // false while full recompute has dropped all but the input
};

struct ChunkActivations {
  std::vector<LayerActivations> layers;
  Tensor tokens;                               // i32 [rows] (first virtual stage)
  Tensor lnf_input, lnf, lnf_mean, lnf_rstd, lnf_full;
  Tensor logits, row_max, sum_exp;             // vocab-parallel loss (last virtual stage)
  Tensor targets;                              // i32 [rows]
};

}  // namespace loom::exec
