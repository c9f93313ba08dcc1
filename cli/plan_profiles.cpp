#include "cli/plan_profiles.hpp"

#include "core/error.hpp"

namespace loom::cli {

std::vector<core::Profile> plan_profiles(const core::Plan& plan, const std::string& profile_override) {
  if (!plan.cluster.mixed()) return {core::resolve_profile(profile_override.empty() ? plan.cluster.profile : profile_override)};
  if (!profile_override.empty())
    throw InvalidInput("--profile {} cannot be used with a mixed cluster: its {} device groups each name their own "
                       "profile (cluster.groups[].profile); edit those instead",
                       profile_override, plan.cluster.groups.size());
  return core::resolve_group_profiles(plan.cluster);
}

sim::Prediction simulate_on(const core::Plan& plan, const std::vector<core::Profile>& profiles,
                            const sim::SimulationOptions& options) {
  if (plan.cluster.mixed()) return sim::simulate(plan, profiles, options);
  return sim::simulate(plan, profiles.front(), options);
}

}  // namespace loom::cli
