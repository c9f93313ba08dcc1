// Megatron-Core's gradient buckets: the parameters in reverse order of declaration (the backward's
// order), each in exactly one bucket, each bucket one contiguous range of the flat buffers, closed
// as soon as it reaches the bucket size, never spanning two model chunks, and the tied embedding
// alone in its own.

#include "executor/engine/gradient_buckets.hpp"
#include "executor/model/gpt2_parameters.hpp"
#include "executor/model/parameters.hpp"

#include "core/error.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

namespace loom::exec {
namespace {

// The CPU kernels the stores are finalized with (parameter values live on the CPU).
Kernels& bucket_test_kernels() {
  static std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  return *kernels;
}


using ::testing::ElementsAre;

// Parameters of the given sizes and chunks laid out one after the other, as ParameterStore does.
std::vector<BucketedParameter> laid_out(const std::vector<int64_t>& sizes, const std::vector<int64_t>& chunks = {}) {
  std::vector<BucketedParameter> out;
  int64_t offset = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    out.push_back({i, offset, sizes[i], chunks.empty() ? 0 : chunks[i], false});
    offset += sizes[i];
  }
  return out;
}

std::vector<std::vector<size_t>> members(const std::vector<GradientBucket>& buckets) {
  std::vector<std::vector<size_t>> out;
  for (const GradientBucket& b : buckets) out.push_back(b.parameters);
  return out;
}

TEST(GradientBuckets, ReverseOrderClosedOnceTheSizeIsReached) {
  // Sizes 4 3 5 2 6 from the front; the backward meets them as 6 2 5 3 4.
  const std::vector<GradientBucket> buckets = assign_gradient_buckets(laid_out({4, 3, 5, 2, 6}), 7);
  // 6 (< 7) + 2 = 8: closed; 5 + 3 = 8: closed; 4 left over.
  EXPECT_THAT(members(buckets), ElementsAre(ElementsAre(4, 3), ElementsAre(2, 1), ElementsAre(0)));
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0].begin, 12);
  EXPECT_EQ(buckets[0].end, 20);
  EXPECT_EQ(buckets[1].begin, 4);
  EXPECT_EQ(buckets[1].end, 12);
  EXPECT_EQ(buckets[2].begin, 0);
  EXPECT_EQ(buckets[2].end, 4);
}

TEST(GradientBuckets, AParameterLargerThanABucketIsABucketOfItsOwn) {
  EXPECT_THAT(members(assign_gradient_buckets(laid_out({1, 50, 1, 1}), 10)),
              ElementsAre(ElementsAre(3, 2, 1), ElementsAre(0)));
  EXPECT_THAT(members(assign_gradient_buckets(laid_out({1, 50, 1, 1}), 1)),
              ElementsAre(ElementsAre(3), ElementsAre(2), ElementsAre(1), ElementsAre(0)));
  EXPECT_THAT(members(assign_gradient_buckets(laid_out({1, 50, 1, 1}), int64_t(1) << 40)),
              ElementsAre(ElementsAre(3, 2, 1, 0)));
}

TEST(GradientBuckets, NeverSpanTwoChunks) {
  // Chunk 0's parameters first in the buffers (declared first), chunk 1's after.
  const std::vector<GradientBucket> buckets =
      assign_gradient_buckets(laid_out({2, 2, 2, 2, 2}, {0, 0, 0, 1, 1}), 100);
  EXPECT_THAT(members(buckets), ElementsAre(ElementsAre(4, 3), ElementsAre(2, 1, 0)));
  EXPECT_EQ(buckets[0].chunk, 1);
  EXPECT_EQ(buckets[1].chunk, 0);
}

TEST(GradientBuckets, TheTiedEmbeddingSitsAlone) {
  // The last stage's copy of the tied embedding is declared last: the backward's first.
  std::vector<BucketedParameter> parameters = laid_out({3, 3, 3, 5});
  parameters[3].own_bucket = true;
  const std::vector<GradientBucket> buckets = assign_gradient_buckets(parameters, 100);
  EXPECT_THAT(members(buckets), ElementsAre(ElementsAre(3), ElementsAre(2, 1, 0)));
  EXPECT_TRUE(buckets[0].own_bucket);
  EXPECT_FALSE(buckets[1].own_bucket);
  // The first stage's: declared first, so the backward's last, alone too.
  parameters = laid_out({5, 3, 3, 3});
  parameters[0].own_bucket = true;
  EXPECT_THAT(members(assign_gradient_buckets(parameters, 100)), ElementsAre(ElementsAre(3, 2, 1), ElementsAre(0)));
}

TEST(GradientBuckets, RefusesParametersOutOfPlaceAndEmptyBuckets) {
  std::vector<BucketedParameter> gap = laid_out({3, 3});
  gap[1].offset = 4;
  EXPECT_THROW(assign_gradient_buckets(gap, 10), Error);
  EXPECT_THROW(assign_gradient_buckets(laid_out({3, 3}), 0), Error);
  EXPECT_TRUE(assign_gradient_buckets({}, 10).empty());
}

// GPT-2's parameters of a two-chunk stage with the embedding and the output layer, as a rank
// lays them out: every parameter in exactly one bucket, in reverse declaration order; buckets
// contiguous, covering the parameters, each at least the bucket size unless it is its chunk's
// last, and smaller than that without its last parameter.
TEST(GradientBuckets, Gpt2StageProperties) {
  core::ModelSpec m;
  m.name = "buckets-test";
  m.num_layers = 4;
  m.hidden_size = 8;
  m.num_attention_heads = 2;
  m.ffn_hidden_size = 32;
  m.padded_vocab_size = 64;
  m.seq_length = 4;
  ParameterStore store;
  declare_gpt2_parameters(store, m, {0, 1, 2, 3}, true, true);
  store.finalize(0, 1, 7, 4, bucket_test_kernels(), ElementType::f32);
  std::vector<BucketedParameter> parameters;
  for (size_t i = 0; i < store.all().size(); ++i) {
    const Parameter& p = store.all()[i];
    // Layers 0-1 and the embedding in chunk 0; layers 2-3 and the output layer in chunk 1.
    const bool chunk1 = p.name.rfind("h.2.", 0) == 0 || p.name.rfind("h.3.", 0) == 0 || p.name.rfind("ln_f", 0) == 0;
    parameters.push_back({i, p.offset, p.value.numel(), chunk1 ? 1 : 0, false});
  }
  for (const int64_t size : {int64_t(1), int64_t(100), int64_t(500), int64_t(1) << 30}) {
    const std::vector<GradientBucket> buckets = assign_gradient_buckets(parameters, size);
    std::vector<size_t> order;
    for (size_t b = 0; b < buckets.size(); ++b) {
      const GradientBucket& bucket = buckets[b];
      order.insert(order.end(), bucket.parameters.begin(), bucket.parameters.end());
      int64_t elements = 0;
      for (const size_t i : bucket.parameters) {
        elements += store.all()[i].value.numel();
        EXPECT_EQ(parameters[i].chunk, bucket.chunk) << store.all()[i].name;
      }
      EXPECT_EQ(bucket.size(), elements) << "bucket " << b << " of size " << size;
      EXPECT_EQ(bucket.begin, store.all()[bucket.parameters.back()].offset);
      const bool chunk_last = b + 1 == buckets.size() || buckets[b + 1].chunk != bucket.chunk;
      if (!chunk_last) {
        EXPECT_GE(bucket.size(), size) << "bucket " << b;
      }
      EXPECT_LT(bucket.size() - store.all()[bucket.parameters.back()].value.numel(), size) << "bucket " << b;
      if (b > 0) {
        EXPECT_EQ(bucket.end, buckets[b - 1].begin) << "buckets are adjacent ranges";
      }
    }
    std::vector<size_t> reversed(store.all().size());
    std::iota(reversed.rbegin(), reversed.rend(), size_t(0));
    EXPECT_EQ(order, reversed) << "each parameter once, in reverse order (bucket size " << size << ")";
    EXPECT_EQ(buckets.front().end, store.all().back().offset + store.all().back().value.numel());
    EXPECT_EQ(buckets.back().begin, 0);
  }
  EXPECT_EQ(assign_gradient_buckets(parameters, int64_t(1) << 30).size(), 2u) << "one bucket per chunk";
  EXPECT_EQ(assign_gradient_buckets(parameters, 1).size(), store.all().size());
}

}  // namespace
}  // namespace loom::exec
