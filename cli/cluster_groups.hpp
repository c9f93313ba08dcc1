#pragma once
// `--cluster-groups 4x8:a100-80gb-dgx,4x8:h100-80gb-dgx`: a mixed cluster on the command line,
// its groups of nodes in pipeline order, each NODESxDEVICES-PER-NODE:PROFILE.

#include "core/cluster_spec.hpp"

#include <string_view>
#include <vector>

namespace loom::cli {

// The groups, in the order given; InvalidInput naming the entry for anything malformed (the
// profiles are only named here, not resolved; the counts are checked by ClusterSpec's rules).
std::vector<core::DeviceGroup> parse_cluster_groups(std::string_view text);

}  // namespace loom::cli
