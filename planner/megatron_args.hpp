#pragma once
// A plan as Megatron-LM command-line arguments (pretrain_gpt.py), so that what Loom chose can
// be run with the framework users already have.

#include "core/plan.hpp"

#include <string>
#include <vector>

namespace loom::plan {

// The flags, in the order Megatron's own examples use, each with its value as a separate entry.
std::vector<std::string> megatron_arguments(const core::Plan& plan);

// A ready-to-edit launch command: torchrun over the plan's nodes and devices, then the flags,
// one per line. Notes on what Megatron derives itself (vocabulary padding) or lacks (GPipe)
// come first as shell comments.
std::string megatron_command(const core::Plan& plan);

}  // namespace loom::plan
