#pragma once
// The plan Loom shows, plans around and runs when the user names none: GPT-2 124M on one
// 8-GPU node with every kind of parallelism in play, so that each part of Loom has work to do.

#include "core/plan.hpp"

namespace loom::core {

Plan default_plan();

}  // namespace loom::core
