#pragma once
// Store rows made from the vocabulary, so every writer fills the typed columns the same way.

#include "core/plan.hpp"
#include "core/store.hpp"

#include <string>

namespace loom::core {

// `name` labels the plan in listings ("loom plan #3", a file name, ...).
PlanRow plan_row(const Plan& plan, const std::string& name);

}  // namespace loom::core
