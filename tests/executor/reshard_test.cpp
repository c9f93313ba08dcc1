// The assembly behind resharding resume (executor/checkpoint/reshard.hpp), without MPI: a
// checkpoint of plan A is made in memory from known full tensors (each rank's shards and its part
// of the flat Adam moments, ZeRO-1 blocks included), and every rank of plan B must assemble exactly
// its shards of the same tensors: values, m and v, with the vocabulary padding of each tp.
// Plus the per-tensor safetensors reader it reads old ranks' files with.

#include "core/error.hpp"
#include "core/plan.hpp"
#include "core/rank_layout.hpp"
#include "executor/checkpoint/reshard.hpp"
#include "executor/checkpoint/safetensors.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <unistd.h>

namespace loom::exec {
namespace {

struct Shape {
  int64_t tp = 1, pp = 1, dp = 1;
  bool zero = false;
  bool interleaved = false;  // one layer per virtual stage (or, with `split`, its v entries per rank)
  std::vector<int64_t> split = {};  // pipeline-layer-split (uneven stages), none when empty
};

// A tiny GPT-2 whose vocabulary of 100 tokens pads to 104 rows at tp 1 and 112 at tp 2.
core::Plan plan_of(const Shape& s) {
  core::Plan plan;
  plan.model.name = "reshard-unit";
  plan.model.num_layers = 4;
  plan.model.hidden_size = 16;
  plan.model.num_attention_heads = 4;
  plan.model.ffn_hidden_size = 64;
  plan.model.vocab_size = 100;
  plan.model.make_vocab_size_divisible_by = 8;
  plan.model.seq_length = 8;
  plan.cluster.devices_per_node = s.tp * s.pp * s.dp;
  plan.parallel.tensor_parallel = s.tp;
  plan.parallel.pipeline_parallel = s.pp;
  plan.parallel.data_parallel = s.dp;
  plan.parallel.distributed_optimizer = s.zero;
  if (s.interleaved) {
    plan.parallel.schedule = core::Schedule::interleaved;
    if (s.split.empty()) plan.parallel.layers_per_virtual_stage = 1;
  }
  plan.parallel.pipeline_layer_split = s.split;
  return plan;
}

// The reference full tensors: (seed, name) → values, at the padded size of `plan`.
std::vector<float> full_of(const Parameter& p, uint64_t seed) {
  const int64_t n = std::accumulate(p.full_shape.begin(), p.full_shape.end(), int64_t(1), std::multiplies<>());
  std::vector<float> values = normal_values(seed, p.name, n, 1.0f);
  if (seed == 3)
    for (float& v : values) v = std::abs(v);  // v ≥ 0
  return values;
}

// A checkpoint of `plan` in memory, built as save_checkpoint writes it.
class MemoryCheckpoint : public ShardSource {
 public:
  explicit MemoryCheckpoint(const core::Plan& plan) {
    const core::RankLayout layout = core::RankLayout::of(plan.parallel);
    const bool zero = plan.parallel.distributed_optimizer && plan.parallel.data_parallel > 1;
    for (int64_t rank = 0; rank < layout.world_size(); ++rank) {
      const core::RankCoords c = layout.coords(rank);
      const std::vector<Parameter> parameters = stage_parameter_layout(plan, c.pipeline);
      int64_t total = 0;
      for (const Parameter& p : parameters) total += std::accumulate(p.local_shape.begin(), p.local_shape.end(), int64_t(1), std::multiplies<>());
      const int64_t dp = plan.parallel.data_parallel, padded = (total + dp - 1) / dp * dp;
      std::vector<float> m(size_t(padded), 0.0f), v(size_t(padded), 0.0f);
      for (const Parameter& p : parameters) {
        tensors_[{rank, "param/" + p.name}] = ParameterStore::shard(full_of(p, 1), p, c.tensor, plan.parallel.tensor_parallel);
        const std::vector<float> pm = ParameterStore::shard(full_of(p, 2), p, c.tensor, plan.parallel.tensor_parallel);
        const std::vector<float> pv = ParameterStore::shard(full_of(p, 3), p, c.tensor, plan.parallel.tensor_parallel);
        std::copy(pm.begin(), pm.end(), m.begin() + p.offset);
        std::copy(pv.begin(), pv.end(), v.begin() + p.offset);
      }
      const int64_t block = zero ? padded / dp : padded, begin = zero ? c.data * block : 0;
      tensors_[{rank, "optimizer/m"}] = std::vector<float>(m.begin() + begin, m.begin() + begin + block);
      tensors_[{rank, "optimizer/v"}] = std::vector<float>(v.begin() + begin, v.begin() + begin + block);
    }
  }
  int64_t element_count(int64_t rank, const std::string& tensor) override {
    return int64_t(tensors_.at({rank, tensor}).size());
  }
  std::vector<float> read(int64_t rank, const std::string& tensor, int64_t begin, int64_t count) override {
    const std::vector<float>& all = tensors_.at({rank, tensor});
    EXPECT_LE(begin + count, int64_t(all.size())) << tensor;
    ++reads_;
    return std::vector<float>(all.begin() + begin, all.begin() + begin + count);
  }
  int64_t reads() const { return reads_; }

 private:
  std::map<std::pair<int64_t, std::string>, std::vector<float>> tensors_;
  int64_t reads_ = 0;
};

// What a parameter of `to` must hold: the reference at `from`'s padding, fitted to `to`'s.
std::vector<float> expected(const core::Plan& from, const Parameter& p, uint64_t seed) {
  Parameter old = p;
  for (const Parameter& q : stage_parameter_layout(from, 0)) if (q.name == p.name) old = q;
  for (const Parameter& q : stage_parameter_layout(from, from.parallel.pipeline_parallel - 1)) if (q.name == p.name) old = q;
  return fit_full_tensor(full_of(old, seed), old.full_shape, p.full_shape, p.sharding, p.name);
}

void check_reshard(const Shape& a, const Shape& b) {
  const core::Plan from = plan_of(a), to = plan_of(b);
  MemoryCheckpoint checkpoint(from);
  CheckpointResharder resharder(from, checkpoint);
  const core::RankLayout layout = core::RankLayout::of(to.parallel);
  const bool zero = to.parallel.distributed_optimizer && to.parallel.data_parallel > 1;
  for (int64_t rank = 0; rank < layout.world_size(); ++rank) {
    const core::RankCoords c = layout.coords(rank);
    const std::vector<Parameter> parameters = stage_parameter_layout(to, c.pipeline);
    int64_t total = 0;
    for (const Parameter& p : parameters) total += std::accumulate(p.local_shape.begin(), p.local_shape.end(), int64_t(1), std::multiplies<>());
    const int64_t dp = to.parallel.data_parallel, padded = (total + dp - 1) / dp * dp;
    const int64_t size = zero ? padded / dp : padded, begin = zero ? c.data * size : 0;
    const CheckpointResharder::RankState state =
        resharder.rank_state(parameters, c.tensor, to.parallel.tensor_parallel, begin, size);
    std::vector<float> m(size_t(padded), 0.0f), v(size_t(padded), 0.0f);
    for (size_t i = 0; i < parameters.size(); ++i) {
      const Parameter& p = parameters[i];
      EXPECT_EQ(state.values[i], ParameterStore::shard(expected(from, p, 1), p, c.tensor, to.parallel.tensor_parallel))
          << "rank " << rank << " " << p.name;
      const auto pm = ParameterStore::shard(expected(from, p, 2), p, c.tensor, to.parallel.tensor_parallel);
      const auto pv = ParameterStore::shard(expected(from, p, 3), p, c.tensor, to.parallel.tensor_parallel);
      std::copy(pm.begin(), pm.end(), m.begin() + p.offset);
      std::copy(pv.begin(), pv.end(), v.begin() + p.offset);
    }
    EXPECT_EQ(state.m, std::vector<float>(m.begin() + begin, m.begin() + begin + size)) << "rank " << rank << " m";
    EXPECT_EQ(state.v, std::vector<float>(v.begin() + begin, v.begin() + begin + size)) << "rank " << rank << " v";
  }
}

TEST(Reshard, Tp2Pp2ToOneRankWithAnotherVocabularyPadding) { check_reshard({2, 2, 1}, {1, 1, 1}); }
TEST(Reshard, OneRankToTp2Pp2) { check_reshard({1, 1, 1}, {2, 2, 1}); }
TEST(Reshard, Dp2ZeroToTp2) { check_reshard({1, 1, 2, true}, {2, 1, 1}); }
TEST(Reshard, InterleavedTp2Dp2ZeroToDp3Zero) { check_reshard({2, 2, 2, true, true}, {1, 1, 3, true}); }
TEST(Reshard, Dp3ZeroToPp2Dp2Zero) { check_reshard({1, 1, 3, true}, {1, 2, 2, true}); }

// Uneven splits (issue 23): parameters are found by their global layer index, wherever a stage of
// either plan holds them; a first stage with no layers holds only the embedding.
TEST(Reshard, EvenPp2ToSplit1And3) { check_reshard({1, 2, 1}, {1, 2, 1, false, false, {1, 3}}); }
TEST(Reshard, Split3And1Tp2ToEvenPp2Dp2Zero) { check_reshard({2, 2, 1, false, false, {3, 1}}, {1, 2, 2, true}); }
TEST(Reshard, InterleavedSplitToZeroLayerFirstStage) {
  check_reshard({1, 2, 1, false, true, {1, 1, 2, 0}}, {1, 2, 1, false, false, {0, 4}});
}

TEST(Reshard, StageLayersFollowTheVirtualStages) {
  EXPECT_EQ(stage_layers(plan_of({1, 2, 1, false, true}), 0), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(stage_layers(plan_of({1, 2, 1, false, true}), 1), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(stage_layers(plan_of({1, 2, 1}), 1), (std::vector<int64_t>{2, 3}));
}

TEST(Reshard, AnotherShapeIsRefused) {
  EXPECT_THROW(fit_full_tensor({1, 2, 3, 4}, {2, 2}, {4, 1}, Sharding::rows, "x"), InvalidInput);
  EXPECT_EQ(fit_full_tensor({1, 2, 3, 4}, {2, 2}, {3, 2}, Sharding::vocab_rows, "x"),
            (std::vector<float>{1, 2, 3, 4, 0, 0}));
  EXPECT_EQ(fit_full_tensor({1, 2, 3, 4}, {2, 2}, {1, 2}, Sharding::vocab_rows, "x"), (std::vector<float>{1, 2}));
}

TEST(SafeTensorsReader, ReadsRangesOfOneTensorAsTheWholeFileReaderDoes) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("loom_reader_test_" + std::to_string(::getpid()) + ".safetensors");
  const std::vector<float> a = normal_values(5, "a", 12, 1.0f), b = normal_values(5, "b", 7, 1.0f);
  write_safetensors(path.string(), {{"a", f32_tensor({3, 4}, a)}, {"b", f32_tensor({7}, b)}}, {{"k", "v"}});
  const SafeTensorsReader reader(path.string());
  EXPECT_EQ(reader.metadata().at("k"), "v");
  EXPECT_EQ(reader.info("a").shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(reader.read_f32("a", 0, 12), a);
  EXPECT_EQ(reader.read_f32("b", 2, 3), std::vector<float>(b.begin() + 2, b.begin() + 5));
  EXPECT_THROW(reader.read_f32("b", 5, 3), InvalidInput);
  EXPECT_THROW(reader.info("c"), InvalidInput);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace loom::exec
