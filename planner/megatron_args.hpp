#pragma once
// A plan as Megatron-LM command-line arguments (pretrain_gpt.py), so that what Loom chose can
// be run with the framework users already have.

#include "core/plan.hpp"

#include <string>
#include <vector>

namespace loom::plan {

// The plan's layer split in the terms Megatron-LM's flags can say (pretrain_gpt.py reads
// --decoder-first/last-pipeline-num-layers, --account-for-embedding/loss-in-pipeline-split and the
// virtual stages as --num-layers-per-virtual-pipeline-stage or --num-virtual-stages-per-pipeline-rank):
// the plan's ParallelPlan with any pipeline-layer-split replaced by the first/last or account-for
// form that gives the very same layers per virtual stage, or the even form when it is even. When no
// flag can say it, InvalidInput with one line saying why, and the Megatron-Core layout that could.
core::ParallelPlan megatron_layer_split(const core::Plan& plan);

// Megatron-Core's --pipeline-model-parallel-layout (experimental) for the plan's split, in model
// order: "Et*7|t*9|t*9|t*7L" (E the embedding, t*N N transformer layers, L the loss, | between
// virtual stages).
std::string megatron_pipeline_layout(const core::Plan& plan);

// The flags, in the order Megatron's own examples use, each with its value as a separate entry.
std::vector<std::string> megatron_arguments(const core::Plan& plan);

// A ready-to-edit launch command: torchrun over the plan's nodes and devices, then the flags,
// one per line. Notes on what Megatron derives itself (vocabulary padding) or lacks (GPipe)
// come first as shell comments, and on a mixed cluster which nodes (--node-rank) must be which
// kind of host.
std::string megatron_command(const core::Plan& plan);

}  // namespace loom::plan
