#include "core/error.hpp"
#include "core/rank_layout.hpp"

#include <gtest/gtest.h>

namespace loom::core {
namespace {

using Groups = std::vector<std::vector<int64_t>>;

// megatron/core/parallel_state.py, initialize_model_parallel's docstring: 16 GPUs, TP=2, PP=4
// (so DP=2).
TEST(RankLayout, MegatronSixteenGpuExample) {
  const RankLayout layout(2, 2, 4);
  EXPECT_EQ(layout.groups(GroupKind::tensor),
            (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}}));
  EXPECT_EQ(layout.groups(GroupKind::data),
            (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}}));
  EXPECT_EQ(layout.groups(GroupKind::pipeline),
            (Groups{{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14}, {3, 7, 11, 15}}));
  EXPECT_EQ(layout.groups(GroupKind::embedding), (Groups{{0, 12}, {1, 13}, {2, 14}, {3, 15}}));
  EXPECT_EQ(layout.groups(GroupKind::model),
            (Groups{{0, 1, 4, 5, 8, 9, 12, 13}, {2, 3, 6, 7, 10, 11, 14, 15}}));
}

TEST(RankLayout, CoordsAndRankAreInverse) {
  const RankLayout layout(4, 3, 5);
  ASSERT_EQ(layout.world_size(), 60);
  for (int64_t r = 0; r < layout.world_size(); ++r) EXPECT_EQ(layout.rank(layout.coords(r)), r);
  EXPECT_EQ(layout.coords(13), (RankCoords{1, 0, 1}));  // 13 = 1 + 4·(0 + 3·1)
}

TEST(RankLayout, EveryRankIsInExactlyOneGroupOfEachKind) {
  const RankLayout layout(2, 3, 4);
  for (GroupKind kind : {GroupKind::tensor, GroupKind::data, GroupKind::pipeline, GroupKind::model}) {
    std::vector<int> seen(size_t(layout.world_size()), 0);
    for (const auto& group : layout.groups(kind)) {
      EXPECT_EQ(int64_t(group.size()), layout.size(kind)) << to_string(kind);
      for (int64_t r : group) ++seen[size_t(r)];
    }
    for (int count : seen) EXPECT_EQ(count, 1) << to_string(kind);
  }
}

TEST(RankLayout, MiddleStagesHaveNoEmbeddingGroup) {
  const RankLayout layout(1, 1, 4);
  EXPECT_TRUE(layout.group(GroupKind::embedding, 1).empty());
  EXPECT_EQ(layout.group(GroupKind::embedding, 3), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(RankLayout(2, 1, 1).group(GroupKind::embedding, 1), (std::vector<int64_t>{1}));
}

TEST(RankLayout, NodePlacement) {
  const RankLayout layout(8, 2, 2);  // 32 ranks on 4 nodes of 8
  for (const auto& group : layout.groups(GroupKind::tensor)) EXPECT_FALSE(spans_nodes(group, 8));
  for (const auto& group : layout.groups(GroupKind::data)) EXPECT_TRUE(spans_nodes(group, 8));
  EXPECT_EQ(node_of(17, 8), 2);
}

TEST(RankLayout, RejectsRanksOutsideTheWorld) {
  const RankLayout layout(2, 2, 2);
  EXPECT_THROW(layout.coords(8), InvalidInput);
  EXPECT_THROW(layout.coords(-1), InvalidInput);
  EXPECT_THROW(RankLayout(0, 1, 1), InvalidInput);
}

}  // namespace
}  // namespace loom::core
