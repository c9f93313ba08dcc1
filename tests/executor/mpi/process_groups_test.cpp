// Process groups cut from the world match core::RankLayout exactly: each group's size, this
// rank's place in it, and its members, found by all-gathering global ranks inside the group.
// Layouts fit 4 and 8 ranks (the ctest entries run both).

#include "core/error.hpp"
#include "core/rank_layout.hpp"
#include "executor/comm/communicator.hpp"
#include "executor/comm/mpi_session.hpp"  // mpi_world
#include "tests/executor/mpi/mpi_test_support.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace loom::exec {
namespace {

using core::GroupKind;

// The global ranks of `group`'s members, in its rank order. Floats hold small integers exactly.
std::vector<int64_t> members_of(Communicator& group, int64_t global_rank) {
  const float me = float(global_rank);
  std::vector<float> gathered(size_t(group.size()), -1);
  group.all_gather(&me, gathered.data(), 1);
  return std::vector<int64_t>(gathered.begin(), gathered.end());
}

void expect_group(const Communicator* group, const core::RankLayout& layout, GroupKind kind,
                  int64_t me, int64_t position) {
  SCOPED_TRACE(::testing::Message() << core::to_string(kind) << " group of rank " << me);
  ASSERT_NE(group, nullptr);
  const std::vector<int64_t> expected = layout.group(kind, me);
  EXPECT_EQ(group->size(), int(expected.size()));
  EXPECT_EQ(group->rank(), position);
  // Communicator is non-const (collectives are); the pointer is only const for the signature.
  EXPECT_EQ(members_of(const_cast<Communicator&>(*group), me), expected);
}

void check_layout(const core::RankLayout& layout) {
  auto world = mpi_world();
  const ProcessGroups groups = make_process_groups(*world, layout);
  const int64_t me = world->rank();
  const core::RankCoords at = layout.coords(me);
  EXPECT_EQ(groups.coords, at);
  EXPECT_EQ(groups.layout.world_size(), layout.world_size());
  expect_group(groups.tensor.get(), layout, GroupKind::tensor, me, at.tensor);
  expect_group(groups.data.get(), layout, GroupKind::data, me, at.data);
  expect_group(groups.pipeline.get(), layout, GroupKind::pipeline, me, at.pipeline);

  const int64_t stages = layout.size(GroupKind::pipeline);
  const bool first = at.pipeline == 0, last = at.pipeline == stages - 1;
  if (stages > 1 && (first || last)) {
    expect_group(groups.embedding.get(), layout, GroupKind::embedding, me, first ? 0 : 1);
  } else {
    EXPECT_EQ(groups.embedding, nullptr) << "rank " << me << " on stage " << at.pipeline;
  }
}

TEST(MpiGroups, Tp2Dp2) {
  LOOM_REQUIRE_RANKS(4);
  check_layout(core::RankLayout(2, 2, 1));  // one stage: no embedding group anywhere
}

TEST(MpiGroups, Tp2Pp2) {
  LOOM_REQUIRE_RANKS(4);
  check_layout(core::RankLayout(2, 1, 2));
}

TEST(MpiGroups, Pp4LeavesMiddleStagesOutOfTheEmbeddingGroup) {
  LOOM_REQUIRE_RANKS(4);
  check_layout(core::RankLayout(1, 1, 4));
}

TEST(MpiGroups, Dp4) {
  LOOM_REQUIRE_RANKS(4);
  check_layout(core::RankLayout(1, 4, 1));
}

TEST(MpiGroups, WrongWorldSizeIsInvalidInput) {
  // Fails before any split, on every rank alike, so nobody waits in a collective.
  auto world = mpi_world();
  try {
    make_process_groups(*world, core::RankLayout(world->size() + 1, 1, 1));
    ADD_FAILURE() << "no error for a layout of the wrong size";
  } catch (const InvalidInput& error) {
    EXPECT_NE(std::string(error.what()).find("were started"), std::string::npos) << error.what();
  }
}

TEST(MpiGroups8, Tp2Dp2Pp2) {
  LOOM_REQUIRE_RANKS(8);
  check_layout(core::RankLayout(2, 2, 2));
}

TEST(MpiGroups8, Tp2Pp4) {
  LOOM_REQUIRE_RANKS(8);
  check_layout(core::RankLayout(2, 1, 4));
}

}  // namespace
}  // namespace loom::exec
