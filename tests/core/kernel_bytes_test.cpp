// The kernel tables' names and the bytes each kernel is charged for: every backward name has a
// forward one to fall back to, the optional kernels are the ones a backend may not run, and
// Llama's kernels (RMSNorm, SwiGLU, rotary positions, the expansion of query groups) move the
// activations they read and write.

#include "core/kernel_bytes.hpp"

#include "core/profile.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

namespace loom::core {
namespace {

namespace kb = kernel_bytes;

bool known(std::string_view kernel) {
  return std::find(std::begin(kb::kAllKernels), std::end(kb::kAllKernels), kernel) != std::end(kb::kAllKernels);
}

TEST(KernelBytes, EveryKernelIsNamedOnceAndEveryBackwardHasAForward) {
  const std::set<std::string_view> names(std::begin(kb::kAllKernels), std::end(kb::kAllKernels));
  EXPECT_EQ(names.size(), std::size(kb::kAllKernels));
  for (std::string_view kernel : kb::kAllKernels) EXPECT_TRUE(known(kb::forward_name(kernel))) << kernel;
  for (std::string_view kernel : {kb::kRmsnorm, kb::kRmsnormBackward, kb::kSwiglu, kb::kSwigluBackward, kb::kRotary,
                                  kb::kRotaryBackward, kb::kQueryGroups, kb::kQueryGroupsBackward})
    EXPECT_TRUE(known(kernel)) << kernel;
  EXPECT_EQ(kb::forward_name(kb::kRmsnormBackward), kb::kRmsnorm);
  EXPECT_EQ(kb::forward_name(kb::kSwigluBackward), kb::kSwiglu);
  EXPECT_EQ(kb::forward_name(kb::kRotaryBackward), kb::kRotary);
  EXPECT_EQ(kb::forward_name(kb::kQueryGroupsBackward), kb::kQueryGroups);
  EXPECT_EQ(kb::forward_name(kb::kSwiglu), kb::kSwiglu);
}

TEST(KernelBytes, OnlyTheExecutorsExpansionOfQueryGroupsIsOptional) {
  // Megatron-Core runs RMSNorm, SwiGLU and rotary positions too; only Loom's executor copies the
  // query groups' keys and values to every head.
  for (std::string_view kernel : {kb::kQueryGroups, kb::kQueryGroupsBackward, kb::kBias, kb::kDropout})
    EXPECT_TRUE(kb::charged_only_when_measured(kernel)) << kernel;
  for (std::string_view kernel : {kb::kRmsnorm, kb::kRmsnormBackward, kb::kSwiglu, kb::kSwigluBackward, kb::kRotary,
                                  kb::kRotaryBackward, kb::kLayernorm, kb::kGelu})
    EXPECT_FALSE(kb::charged_only_when_measured(kernel)) << kernel;
}

TEST(KernelBytes, RmsnormMovesWhatLayernormMoves) {
  // Reads x, writes y; the backward reads x and dy, writes dx (rows of 4096, bf16).
  EXPECT_DOUBLE_EQ(kb::rmsnorm_forward(1000, 4096, 2), 2 * 1000 * 4096 * 2);
  EXPECT_DOUBLE_EQ(kb::rmsnorm_backward(1000, 4096, 2), 3 * 1000 * 4096 * 2);
  EXPECT_DOUBLE_EQ(kb::rmsnorm_forward(1000, 4096, 4), kb::layernorm_forward(1000, 4096, 4));
  EXPECT_DOUBLE_EQ(kb::rmsnorm_backward(1000, 4096, 4), kb::layernorm_backward(1000, 4096, 4));
}

TEST(KernelBytes, SwigluReadsTheFusedGateAndUpProjection) {
  // Forward: gate_up [rows, 2f] in, y [rows, f] out. Backward: dy [rows, f] and gate_up in,
  // dgate_up [rows, 2f] out.
  const double rows = 512, f = 3584, e = 2;
  EXPECT_DOUBLE_EQ(kb::swiglu_forward(rows, f, e), (2 * f + f) * rows * e);
  EXPECT_DOUBLE_EQ(kb::swiglu_backward(rows, f, e), (f + 2 * f + 2 * f) * rows * e);
  // GELU of the same output maps f to f.
  EXPECT_DOUBLE_EQ(kb::gelu_forward(rows * f, rows * f, e), 2 * f * rows * e);
  EXPECT_DOUBLE_EQ(kb::gelu_backward(rows * f, rows * f, e), 3 * f * rows * e);
}

TEST(KernelBytes, RotaryMovesQAndKOnly) {
  // 32 heads and 8 groups of 128: q and k are 40 of the 48 heads of a grouped qkv, read and
  // written in place.
  const double rows = 8192, e = 2;
  EXPECT_DOUBLE_EQ(kb::rotary_forward(rows, 32, 8, 128, e), 2 * rows * (32 + 8) * 128 * e);
  EXPECT_DOUBLE_EQ(kb::rotary_backward(rows, 32, 8, 128, e), kb::rotary_forward(rows, 32, 8, 128, e));
  EXPECT_LT(kb::rotary_forward(rows, 32, 8, 128, e), 2 * rows * (32 + 2 * 8) * 128 * e);
}

TEST(KernelBytes, QueryGroupsMoveTheGroupedAndTheExpandedQkv) {
  // Grouped (32 + 2·8)·128 per row one way, 3·32·128 per row the other.
  const double rows = 8192, e = 2;
  EXPECT_DOUBLE_EQ(kb::query_groups_forward(rows, 32, 8, 128, e), rows * ((32 + 2 * 8) + 3 * 32) * 128 * e);
  EXPECT_DOUBLE_EQ(kb::query_groups_backward(rows, 32, 8, 128, e), kb::query_groups_forward(rows, 32, 8, 128, e));
}

TEST(KernelBytes, AProfileReadsBackLlamasTables) {
  Profile p = resolve_profile("a100-80gb-dgx");
  p.provenance = "measured";
  for (std::string_view kernel : {kb::kRmsnorm, kb::kRmsnormBackward, kb::kSwiglu, kb::kSwigluBackward, kb::kRotary,
                                  kb::kRotaryBackward, kb::kQueryGroups, kb::kQueryGroupsBackward})
    p.tables.kernels.push_back({std::string(kernel), 1 << 20, 5e-5});
  const Profile again = profile_from_json(to_json(p), "round trip");
  ASSERT_EQ(again.tables.kernels.size(), 8u);
  EXPECT_EQ(again.tables.kernels[0].kernel, "rmsnorm");
  EXPECT_EQ(again.tables.kernels[7].kernel, "query_groups_backward");
}

}  // namespace
}  // namespace loom::core
