#pragma once
// Which transformer layers each model chunk of a pipeline rank holds under a plan. The plan gives
// the layers of every virtual stage in model order (core::Plan::virtual_stage_layers: entry c·p + r
// is chunk c of pipeline rank r), even or not; a chunk's layers are the run that follows all
// virtual stages before it. The first or last virtual stage may hold none (only the embedding, or
// only the final norm, output layer and loss). GptStage and checkpoint resharding both use this,
// so a checkpoint's parameter names (global layer indices) always match what the stage declared.

#include "core/plan.hpp"  // core::Plan

#include <cstdint>  // int64_t
#include <vector>   // chunks, layers

namespace loom::exec {

struct ChunkLayers {
  int64_t first = 0;  // global index of the chunk's first layer
  int64_t count = 0;  // its layers: first, first + 1, …, first + count - 1 (may be 0)
};

// The chunks of `pipeline_rank`, in chunk order (v entries). Assumes a valid plan.
std::vector<ChunkLayers> chunk_layers(const core::Plan& plan, int64_t pipeline_rank);

// The layers one pipeline rank holds under `plan`, in chunk order (GptStage's assignment).
std::vector<int64_t> stage_layers(const core::Plan& plan, int64_t pipeline_rank);

}  // namespace loom::exec
