#include "executor/model/stage_layers.hpp"

#include "core/error.hpp"  // loom::Error

namespace loom::exec {

std::vector<ChunkLayers> chunk_layers(const core::Plan& plan, int64_t pipeline_rank) {
  const int64_t p = plan.parallel.pipeline_parallel, v = plan.virtual_stages();
  const std::vector<int64_t> counts = plan.virtual_stage_layers();
  if (int64_t(counts.size()) != p * v || pipeline_rank < 0 || pipeline_rank >= p)
    throw Error("chunk_layers: {} virtual stages for pipeline rank {} of {} with {} per rank", counts.size(),
                pipeline_rank, p, v);
  std::vector<ChunkLayers> chunks;
  int64_t first = 0;  // global index of virtual stage s's first layer, walking s in model order
  for (int64_t s = 0; s < p * v; ++s) {
    if (s % p == pipeline_rank) chunks.push_back({first, counts[size_t(s)]});
    first += counts[size_t(s)];
  }
  if (first != plan.model.num_layers)
    throw Error("chunk_layers: the virtual stages hold {} layers; the model has {}", first, plan.model.num_layers);
  return chunks;
}

std::vector<int64_t> stage_layers(const core::Plan& plan, int64_t pipeline_rank) {
  std::vector<int64_t> layers;
  for (const ChunkLayers& chunk : chunk_layers(plan, pipeline_rank))
    for (int64_t l = chunk.first; l < chunk.first + chunk.count; ++l) layers.push_back(l);
  return layers;
}

}  // namespace loom::exec
