#pragma once
// The profiles the CLI simulates a plan on: one kind of device, or each group of a mixed cluster.

#include "core/plan.hpp"
#include "core/profile.hpp"
#include "simulator/prediction.hpp"

#include <string>
#include <vector>

namespace loom::cli {

// A mixed cluster: each device group's profile (core::resolve_group_profiles), in group order.
// Otherwise one: `profile_override` (the command's --profile) or the plan's cluster profile. A
// --profile on a mixed plan is refused (InvalidInput): one profile cannot stand for several kinds
// of device, and silently using it for all would predict a cluster that is not the plan's.
std::vector<core::Profile> plan_profiles(const core::Plan& plan, const std::string& profile_override);

// sim::simulate on those profiles: the per-group overload on a mixed cluster.
sim::Prediction simulate_on(const core::Plan& plan, const std::vector<core::Profile>& profiles,
                            const sim::SimulationOptions& options = {});

}  // namespace loom::cli
