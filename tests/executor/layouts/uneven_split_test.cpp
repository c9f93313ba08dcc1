// Uneven pipeline splits (issue 23): each layout trains the same model on the same data as its
// single-rank reference, as the even layouts do (layouts_test.cpp): loss and gradient norm at each
// of 10 steps within 1e-5 relative, every final parameter within 1e-5 · max(1, |reference|) (the
// Llama ones with layouts_llama_test.cpp's outlier allowance). Loom's pipeline-layer-split (with
// first or last stages of no layers, and interleaved), Megatron's decoder-first/last-pipeline-
// num-layers and account-for-embedding/loss-in-pipeline-split, on GPT-2 and Llama.

#include "layout_support.hpp"
#include "reference_check.hpp"

#include "core/plan_json.hpp"  // core::read_plan_file

#include <gtest/gtest.h>

#include "executor/checkpoint/safetensors.hpp"

#include <filesystem>
#include <set>
#include <string>

namespace loom::layout_tests {
namespace {

namespace fs = std::filesystem;

std::vector<Layout> uneven_layouts() {
  const fs::path six = six_layer_model_json();
  return {
      // The 4-layer test model.
      Layout("pp2_split_1_3", 2, 1, 2).with_layer_split({1, 3}),
      Layout("pp2_split_3_1", 2, 1, 2).with_layer_split({3, 1}),
      Layout("pp2_split_0_4", 2, 1, 2).with_layer_split({0, 4}),  // the first stage: the embedding alone
      Layout("pp2_split_4_0", 2, 1, 2).with_layer_split({4, 0}),  // the last: final norm, output layer, loss
      // The embedding's activations scattered over tp by sequence parallelism go straight to stage 1.
      Layout("tp2_pp2_sp_split_0_4", 4, 2, 2).with_sequence_parallel().with_layer_split({0, 4}),
      Layout("pp2_gpipe_split_3_1", 2, 1, 2).with_schedule("gpipe").with_layer_split({3, 1}),
      Layout("pp3_account_embedding_and_loss", 3, 1, 3).with_accounting(true, true),  // [1, 2, 1]
      // The 6-layer test model: interleaved (2 virtual stages per rank) and pp 3.
      Layout("six_pp2_interleaved_split_0_2_3_1", 2, 1, 2).with_model_file(six).with_layer_split({0, 2, 3, 1}),
      Layout("six_pp2_interleaved_accounted", 2, 1, 2).with_model_file(six).with_accounting(true, true, 2),
      Layout("six_pp3_first_last_1_1", 3, 1, 3).with_model_file(six).with_first_last_layers(1, 1),  // [1, 4, 1]
      Layout("six_pp2_interleaved_first_last_2_4", 2, 1, 2)
          .with_model_file(six)
          .with_first_last_layers(2, 4, 2),  // [1, 2, 1, 2]
      // The Llama test model (untied output layer).
      Layout("llama_pp2_split_1_3", 2, 1, 2).with_llama().with_layer_split({1, 3}),
      Layout("llama_tp2_pp2_split_3_1", 4, 2, 2).with_llama().with_layer_split({3, 1}),
      Layout("llama_pp2_interleaved_split_0_2_1_1", 2, 1, 2).with_llama().with_layer_split({0, 2, 1, 1}),
  };
}

class UnevenSplitMatchesReference : public ::testing::TestWithParam<Layout> {};

TEST_P(UnevenSplitMatchesReference, LossesAndFinalParameters) {
  const Layout& layout = GetParam();
  const Reference& ref = layout.model_file ? reference(*layout.model_file) : reference(layout.llama);
  expect_layout_matches_reference(layout, ref, layout.llama ? OutlierAllowance{2, 1e-4} : OutlierAllowance{});
}

INSTANTIATE_TEST_SUITE_P(UnevenSplits, UnevenSplitMatchesReference, ::testing::ValuesIn(uneven_layouts()),
                         [](const ::testing::TestParamInfo<Layout>& info) { return info.param.name; });

// The plan the test ran is the uneven one asked for, not an even split that happens to match.
TEST(UnevenSplitPlans, HoldTheirSplits) {
  EXPECT_EQ(core::read_plan_file(make_plan(Layout("pp2_split_1_3", 2, 1, 2).with_layer_split({1, 3})).string())
                .virtual_stage_layers(),
            (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(core::read_plan_file(make_plan(Layout("six_pp2_interleaved_accounted", 2, 1, 2)
                                               .with_model_file(six_layer_model_json())
                                               .with_accounting(true, true, 2))
                                     .string())
                .virtual_stage_layers(),
            (std::vector<int64_t>{1, 2, 2, 1}));
}

// The losses above would match whatever split a rank ran (every split computes the same model), so
// this shows the ranks ran the asked one: each rank's checkpoint shard holds exactly its layers.
std::set<int64_t> layers_in_shard(const fs::path& checkpoints, int rank) {
  const fs::path shard = checkpoints / "step-000001" / ("rank-0000" + std::to_string(rank) + ".safetensors");
  std::set<int64_t> layers;
  for (const auto& [name, tensor] : exec::read_safetensors(shard.string()).tensors)
    if (name.rfind("param/h.", 0) == 0 || name.rfind("param/model.layers.", 0) == 0) {
      const size_t begin = name.find_first_of("0123456789");
      layers.insert(std::stoll(name.substr(begin, name.find('.', begin) - begin)));
    }
  return layers;
}

TEST(UnevenSplitPlans, EachRankHoldsItsLayers) {
  const auto shards_of = [](const Layout& layout) {
    const fs::path checkpoints = scratch_dir() / ("held_layers_" + layout.name);
    run_exec(make_plan(layout), layout.ranks, "--steps 1 --checkpoint-dir " + quote(checkpoints.string()));
    std::vector<std::set<int64_t>> held;
    for (int rank = 0; rank < layout.ranks; ++rank) held.push_back(layers_in_shard(checkpoints, rank));
    return held;
  };
  EXPECT_EQ(shards_of(Layout("held_pp2_split_0_4", 2, 1, 2).with_layer_split({0, 4})),
            (std::vector<std::set<int64_t>>{{}, {0, 1, 2, 3}}));
  EXPECT_EQ(shards_of(Layout("held_six_pp2_interleaved_split_0_2_3_1", 2, 1, 2)
                          .with_model_file(six_layer_model_json())
                          .with_layer_split({0, 2, 3, 1})),
            (std::vector<std::set<int64_t>>{{2, 3, 4}, {0, 1, 5}}));
  EXPECT_EQ(shards_of(Layout("held_llama_pp2_split_3_1", 2, 1, 2).with_llama().with_layer_split({3, 1})),
            (std::vector<std::set<int64_t>>{{0, 1, 2}, {3}}));
}

}  // namespace
}  // namespace loom::layout_tests
