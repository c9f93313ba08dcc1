#pragma once
// The memory traffic each memory-bound kernel is charged for: the coordinate of a profile's
// kernel tables. The simulator computes an op's bytes with these functions, and `loom-exec
// profile` records each measurement at the bytes the same function gives for the size it ran,
// so a lookup always compares like with like, whatever a backend really moves.

#include <cstdint>
#include <string_view>

namespace loom::core::kernel_bytes {

// Kernel names of the profile's tables. A backward kernel without a table of its own is
// looked up under its forward name; a kernel without any table runs at the profile's memory
// bandwidth, except the optional ones (see charged_only_when_measured).
inline constexpr std::string_view kLayernorm = "layernorm", kLayernormBackward = "layernorm_backward";
inline constexpr std::string_view kRmsnorm = "rmsnorm", kRmsnormBackward = "rmsnorm_backward";
inline constexpr std::string_view kGelu = "gelu", kGeluBackward = "gelu_backward";
inline constexpr std::string_view kSwiglu = "swiglu", kSwigluBackward = "swiglu_backward";
inline constexpr std::string_view kRotary = "rotary", kRotaryBackward = "rotary_backward";
// Loom's executor runs grouped-query attention through its multi-head attention kernels: each
// query head gets its own copy of its group's key and value (forward), and the copies' gradients
// are summed back into the group (backward). Megatron-Core's flash attention reads the groups as
// they are, so these are charged only where a profile measured them.
inline constexpr std::string_view kQueryGroups = "query_groups", kQueryGroupsBackward = "query_groups_backward";
inline constexpr std::string_view kResidual = "residual", kResidualBackward = "residual_backward";
inline constexpr std::string_view kEmbedding = "embedding", kEmbeddingBackward = "embedding_backward";
inline constexpr std::string_view kCrossEntropy = "cross_entropy", kCrossEntropyBackward = "cross_entropy_backward";
inline constexpr std::string_view kSoftmax = "softmax", kSoftmaxBackward = "softmax_backward";
inline constexpr std::string_view kDropout = "dropout";
inline constexpr std::string_view kAdamw = "adamw", kGradNorm = "grad_norm";
// Bias additions: Megatron fuses them into the GEMM epilogue, GELU or dropout-add.
inline constexpr std::string_view kBias = "bias", kBiasBackward = "bias_backward";

inline constexpr std::string_view kAllKernels[] = {
    kLayernorm, kLayernormBackward, kRmsnorm,      kRmsnormBackward,      kGelu,     kGeluBackward,
    kSwiglu,    kSwigluBackward,    kRotary,       kRotaryBackward,       kQueryGroups, kQueryGroupsBackward,
    kResidual,  kResidualBackward,  kEmbedding,    kEmbeddingBackward,    kCrossEntropy, kCrossEntropyBackward,
    kSoftmax,   kSoftmaxBackward,   kDropout,      kAdamw,                kGradNorm, kBias,
    kBiasBackward, "elementwise"};

// Kernels a backend may not run at all: bias additions (Megatron fuses them into the GEMM
// epilogue, GELU or dropout-add), the embedding's stand-alone dropout (Loom's executor trains
// without dropout) and the expansion of query groups (Loom's executor only). They cost time
// only where a profile measured them.
bool charged_only_when_measured(std::string_view kernel);
// "layernorm_backward" → "layernorm"; a forward name is its own.
std::string_view forward_name(std::string_view kernel);

// rows × width activations of `element_bytes` each.
inline double layernorm_forward(double rows, double width, double element_bytes) {
  return 2.0 * rows * width * element_bytes;  // reads x, writes y
}
inline double layernorm_backward(double rows, double width, double element_bytes) {
  return 3.0 * rows * width * element_bytes;  // reads x and dy, writes dx
}
// RMSNorm keeps no mean and has no bias, but moves the same activations as LayerNorm (its
// one fp32 statistic per row and its gain are negligible beside them).
inline double rmsnorm_forward(double rows, double width, double element_bytes) {
  return 2.0 * rows * width * element_bytes;  // reads x, writes y
}
inline double rmsnorm_backward(double rows, double width, double element_bytes) {
  return 3.0 * rows * width * element_bytes;  // reads x and dy, writes dx
}
// GELU over `inputs` elements giving as many `outputs` (b·s·f each): reads the inputs, writes
// the outputs; the backward reads the inputs and the outputs' gradient, writes the inputs'.
inline double gelu_forward(double inputs, double outputs, double element_bytes) {
  return (inputs + outputs) * element_bytes;
}
inline double gelu_backward(double inputs, double outputs, double element_bytes) {
  return (inputs + 2.0 * outputs) * element_bytes;
}
// SwiGLU over `rows` of the fused [gate | up] projection (2·ffn wide) giving y (ffn wide).
inline double swiglu_forward(double rows, double ffn, double element_bytes) {
  return 3.0 * rows * ffn * element_bytes;  // reads gate_up (2·ffn), writes y (ffn)
}
inline double swiglu_backward(double rows, double ffn, double element_bytes) {
  return 5.0 * rows * ffn * element_bytes;  // reads dy (ffn) and gate_up (2·ffn), writes dgate_up (2·ffn)
}
// Rotary positions, in place on the q heads and k groups of `rows` rows of a grouped qkv
// (v is left alone): reads and writes (heads + kv_heads)·head_dim values per row, forward and
// backward alike (the backward turns the gradient back). The cosines and sines, one pair per
// position and frequency, are negligible beside them.
inline double rotary_forward(double rows, double heads, double kv_heads, double head_dim, double element_bytes) {
  return 2.0 * rows * (heads + kv_heads) * head_dim * element_bytes;
}
inline double rotary_backward(double rows, double heads, double kv_heads, double head_dim, double element_bytes) {
  return rotary_forward(rows, heads, kv_heads, head_dim, element_bytes);
}
// Query groups to the multi-head layout: reads the grouped qkv ((heads + 2·kv_heads)·head_dim per
// row), writes q, k and v of every head (3·heads·head_dim); the backward reads the latter's
// gradient and writes the former's (each group's sum over its heads).
inline double query_groups_forward(double rows, double heads, double kv_heads, double head_dim, double element_bytes) {
  return rows * (4.0 * heads + 2.0 * kv_heads) * head_dim * element_bytes;
}
inline double query_groups_backward(double rows, double heads, double kv_heads, double head_dim, double element_bytes) {
  return query_groups_forward(rows, heads, kv_heads, head_dim, element_bytes);
}
// Residual add of a block's output (with Megatron's bias and dropout fused: a one-byte mask).
inline double residual(double elements, double element_bytes) { return elements * (3.0 * element_bytes + 1.0); }
inline double residual_backward(double elements, double element_bytes) { return elements * (3.0 * element_bytes + 1.0); }
// Dropout alone (after the embedding): reads, writes, a one-byte mask.
inline double dropout(double elements, double element_bytes) { return elements * (2.0 * element_bytes + 1.0); }
// Token and position lookups summed: two reads and a write of tokens × hidden.
inline double embedding_forward(double tokens, double hidden, double element_bytes) {
  return 3.0 * tokens * hidden * element_bytes;
}
// Gradient rows scattered into the fp32 embedding gradients (read-modify-write).
inline double embedding_backward(double tokens, double hidden, double element_bytes) {
  return tokens * hidden * (element_bytes + 8.0);
}
// Vocab-parallel cross-entropy over tokens × vocabulary-shard logits: reads the logits, keeps
// an fp32 softmax for the backward.
inline double cross_entropy_forward(double tokens, double vocab, double element_bytes) {
  return tokens * vocab * (element_bytes + 8.0);
}
inline double cross_entropy_backward(double tokens, double vocab, double element_bytes) {
  return tokens * vocab * (element_bytes + 4.0);
}
// Masked softmax (with dropout) over `elements` attention scores.
inline double softmax_forward(double elements, double element_bytes) { return elements * (4.0 * element_bytes + 1.0); }
inline double softmax_backward(double elements, double element_bytes) { return elements * (3.0 * element_bytes + 1.0); }
// AdamW over `parameters`: reads the fp32 gradient, reads and writes master weights, m and v,
// writes the 16-bit weights.
inline double adamw(double parameters) { return 30.0 * parameters; }
// Sum of squares of fp32 gradients.
inline double grad_norm(double parameters) { return 4.0 * parameters; }
inline double bias(double rows, double width, double element_bytes) { return 2.0 * rows * width * element_bytes; }
inline double bias_backward(double rows, double width, double element_bytes) { return rows * width * element_bytes; }

}  // namespace loom::core::kernel_bytes
