#pragma once
// Megatron-Core's gradient buckets (DistributedDataParallel's param-and-grad buffer): a model
// chunk's parameters in reverse order of declaration — the order in which the backward finishes
// their gradients, the output layer first — cut into runs of about `bucket_parameters` elements.
// A bucket is closed once it holds at least that many (so every bucket but a chunk's last is at
// least that large, and a parameter larger than a bucket is a bucket of its own); buckets never
// span two chunks, whose last backwards come at different times; and a parameter marked
// `own_bucket` (the tied embedding, summed across pipeline stages) sits alone, as Megatron gives
// the shared embedding a bucket of its own. A bucket is one contiguous range of the flat buffers.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace loom::exec {

// One parameter as the bucketing sees it: where its elements sit in the flat buffers.
struct BucketedParameter {
  size_t index = 0;    // in the ParameterStore
  int64_t offset = 0;  // first element in the flat buffers
  int64_t count = 0;   // elements
  int64_t chunk = 0;   // the model chunk (virtual stage) that uses it
  bool own_bucket = false;
};

struct GradientBucket {
  int64_t begin = 0;  // [begin, end) of the flat buffers
  int64_t end = 0;
  int64_t chunk = 0;
  std::vector<size_t> parameters;  // store indices, in the order the backward finishes them
  bool own_bucket = false;         // the single parameter marked own_bucket

  int64_t size() const { return end - begin; }
};

// `parameters` in declaration order, each right after the previous one in the flat buffers (as
// ParameterStore lays them out); `bucket_parameters` >= 1. The buckets come in the order the
// backward fills them.
std::vector<GradientBucket> assign_gradient_buckets(std::span<const BucketedParameter> parameters,
                                                    int64_t bucket_parameters);

}  // namespace loom::exec
