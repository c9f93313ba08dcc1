// A rank's process groups, cut from the world by split in the Megatron layout. Written against
// Communicator only, so the NCCL backend gets the same groups from the same code.

#include "core/error.hpp"
#include "executor/comm/communicator.hpp"

#include <algorithm>
#include <vector>

namespace loom::exec {
namespace {

// One split for one kind of group. Every rank must call it (split is collective over world),
// including ranks that belong to no group of that kind: they pass color -1 and get null.
std::unique_ptr<Communicator> split_by(Communicator& world, const core::RankLayout& layout,
                                       core::GroupKind kind) {
  const int64_t me = world.rank();
  // The color is the group's index in a list every rank computes alike; the key is the rank's
  // place in the ascending member list, so ranks inside a group keep the global order.
  const std::vector<std::vector<int64_t>> all = layout.groups(kind);
  int color = -1;
  int key = 0;
  for (size_t g = 0; g < all.size() && color < 0; ++g) {
    const auto at = std::find(all[g].begin(), all[g].end(), me);
    if (at == all[g].end()) continue;
    color = int(g);
    key = int(at - all[g].begin());
  }
  std::unique_ptr<Communicator> group = world.split(color, key);

  // A mismatch here is a bug in the layout or the backend, not bad input; catch it at startup
  // rather than as a hang or a wrong reduction many steps later.
  const bool expected = color >= 0;
  if ((group != nullptr) != expected ||
      (group && (group->size() != int(all[size_t(color)].size()) || group->rank() != key)))
    throw Error("process groups: the {} group of rank {} came out wrong (expected {} of {} ranks)",
                core::to_string(kind), me, key, expected ? all[size_t(color)].size() : 0);
  return group;
}

}  // namespace

ProcessGroups make_process_groups(Communicator& world, const core::RankLayout& layout) {
  if (world.size() != layout.world_size())
    throw InvalidInput("the plan needs {} ranks (tp {} × dp {} × pp {}) but {} were started",
                       layout.world_size(), layout.size(core::GroupKind::tensor),
                       layout.size(core::GroupKind::data), layout.size(core::GroupKind::pipeline),
                       world.size());

  ProcessGroups groups{layout, layout.coords(world.rank()), nullptr, nullptr, nullptr, nullptr};
  // The same order on every rank: splits are collective, and ranks that split in different
  // orders would pair up the wrong calls and deadlock.
  groups.tensor = split_by(world, layout, core::GroupKind::tensor);
  groups.data = split_by(world, layout, core::GroupKind::data);
  groups.pipeline = split_by(world, layout, core::GroupKind::pipeline);
  // With one stage there is no second owner of the embedding to sync with. Every rank sees the
  // same pp, so skipping this split is consistent across the world.
  if (layout.size(core::GroupKind::pipeline) > 1)
    groups.embedding = split_by(world, layout, core::GroupKind::embedding);
  return groups;
}

}  // namespace loom::exec
