#include "executor/engine/gradient_buckets.hpp"

#include "core/error.hpp"

namespace loom::exec {

std::vector<GradientBucket> assign_gradient_buckets(std::span<const BucketedParameter> parameters,
                                                    int64_t bucket_parameters) {
  if (bucket_parameters < 1) throw Error("gradient buckets of {} parameters", bucket_parameters);
  for (size_t i = 1; i < parameters.size(); ++i)
    if (parameters[i].offset != parameters[i - 1].offset + parameters[i - 1].count)
      throw Error("gradient buckets: parameter {} does not follow parameter {} in the flat buffers",
                  parameters[i].index, parameters[i - 1].index);
  std::vector<GradientBucket> buckets;
  GradientBucket open;
  auto close = [&] {
    if (!open.parameters.empty()) buckets.push_back(std::move(open));
    open = GradientBucket{};
  };
  for (auto p = parameters.rbegin(); p != parameters.rend(); ++p) {
    if (!open.parameters.empty() && (p->chunk != open.chunk || p->own_bucket || open.own_bucket)) close();
    if (open.parameters.empty()) {
      open.end = p->offset + p->count;
      open.chunk = p->chunk;
      open.own_bucket = p->own_bucket;
    }
    open.begin = p->offset;
    open.parameters.push_back(p->index);
    if (open.size() >= bucket_parameters) close();
  }
  close();
  return buckets;
}

}  // namespace loom::exec
