#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/profile.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

namespace loom::core {
namespace {

TEST(ModelPresets, AreValidUniqueAndSourced) {
  std::set<std::string_view> names;
  for (const ModelPreset& preset : model_presets()) {
    EXPECT_NO_THROW(preset.spec.validate()) << preset.name;
    EXPECT_TRUE(names.insert(preset.name).second) << "duplicate " << preset.name;
    EXPECT_EQ(preset.spec.name, preset.name);
    EXPECT_FALSE(preset.source.empty()) << preset.name;
  }
  for (std::string_view required : {"gpt2-124m", "gpt2-350m", "gpt2-774m", "gpt2-1.5b", "gpt3-125m", "gpt3-175b",
                                    "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b",
                                    "llama3-405b", "megatron-1.7b", "megatron-1t"})
    EXPECT_TRUE(names.contains(required)) << required;
}

TEST(ModelPresets, UnknownNameListsTheKnownOnes) {
  try {
    find_model_preset("gpt5");
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("unknown model preset 'gpt5'"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("gpt2-124m"));
  }
  EXPECT_THROW(resolve_model("no-such-model"), InvalidInput);
}

TEST(Profiles, BuiltinsParseAndRoundTrip) {
  ASSERT_GE(builtin_profiles().size(), 2u);
  for (const Profile& profile : builtin_profiles()) {
    EXPECT_GT(profile.device.memory_bytes, 0);
    if (profile.provenance == "datasheet") {
      EXPECT_TRUE(profile.link("intra-node") && profile.link("inter-node")) << profile.name;
    } else {
      // A measured profile shipped in profiles/ carries its tables and the host it came from.
      EXPECT_EQ(profile.provenance, "measured") << profile.name;
      EXPECT_FALSE(profile.tables.gemm.empty()) << profile.name;
      EXPECT_FALSE(profile.tables.attention.empty()) << profile.name;
      EXPECT_FALSE(profile.tables.kernels.empty()) << profile.name;
      EXPECT_FALSE(profile.tables.collectives.empty()) << profile.name;
      EXPECT_THAT(profile.source, ::testing::HasSubstr("host")) << profile.name;
    }
    const Profile again = profile_from_json(to_json(profile), "round trip");
    EXPECT_EQ(again.name, profile.name);
    EXPECT_EQ(again.device.peak_flops_per_s, profile.device.peak_flops_per_s);
  }
  const Profile a100 = resolve_profile("a100-80gb-dgx");
  EXPECT_DOUBLE_EQ(a100.device.peak_flops_per_s.at(DType::bf16), 312e12);
  EXPECT_DOUBLE_EQ(resolve_profile("h100-80gb-dgx").device.peak_flops_per_s.at(DType::bf16), 989e12);
}

TEST(Profiles, MeasuredFieldsRoundTrip) {
  Profile p = resolve_profile("a100-80gb-dgx");
  p.provenance = "measured";
  p.device.host_cores = 32;
  p.device.threads_per_rank = 4;
  p.device.compute_dtype = DType::fp32;
  p.tables.gemm = {{256, 512, 128, DType::fp32, 1e-4, GemmLayout::tn}, {256, 512, 128, DType::fp32, 2e-4}};
  p.tables.attention = {{8, 256, 64, DType::fp32, true, 3e-3}};
  p.tables.kernels = {{"layernorm_backward", 1 << 20, 5e-5}};
  const Profile again = profile_from_json(to_json(p), "round trip");
  EXPECT_EQ(again.device.host_cores, 32);
  EXPECT_EQ(again.device.threads_per_rank, 4);
  EXPECT_EQ(again.device.compute_dtype, DType::fp32);
  ASSERT_EQ(again.tables.gemm.size(), 2u);
  EXPECT_EQ(again.tables.gemm[0].layout, GemmLayout::tn);
  EXPECT_EQ(again.tables.gemm[1].layout, GemmLayout::nn);  // written explicitly, read back the same
  ASSERT_EQ(again.tables.attention.size(), 1u);
  EXPECT_TRUE(again.tables.attention[0].backward);
  EXPECT_EQ(again.tables.attention[0].seq, 256);
  EXPECT_EQ(again.tables.kernels[0].kernel, "layernorm_backward");
  // Without the optional fields: no sharing, the plan's own type.
  const Profile plain = profile_from_json(to_json(resolve_profile("a100-80gb-dgx")), "plain");
  EXPECT_EQ(plain.device.host_cores, 0);
  EXPECT_FALSE(plain.device.compute_dtype.has_value());
}

// The load a profile's tables were measured under (`loom profile`): written, read back, and
// strictly checked; absent, nothing is assumed.
TEST(Profiles, MeasuredLoadRoundTripsAndIsChecked) {
  Profile p = resolve_profile("cpu-epyc-2core-vm");
  EXPECT_FALSE(p.device.measured_load.has_value());
  EXPECT_FALSE(to_json(p)["device"].contains("measured_load"));
  p.device.measured_load = MeasuredLoad{1, 2, 1.25};
  const Json written = to_json(p);
  const Profile again = profile_from_json(written, "round trip");
  ASSERT_TRUE(again.device.measured_load.has_value());
  EXPECT_EQ(again.device.measured_load->tables_busy_ranks_per_node, 1);
  EXPECT_EQ(again.device.measured_load->probe_busy_ranks_per_node, 2);
  EXPECT_DOUBLE_EQ(again.device.measured_load->slowdown, 1.25);
  auto refused = [&](const char* key, Json value, const char* expected) {
    Json bad = written;
    bad["device"]["measured_load"][key] = std::move(value);
    try {
      profile_from_json(bad, "bad");
      ADD_FAILURE() << key << " accepted";
    } catch (const InvalidInput& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(std::string("device.measured_load.") + key)) << e.what();
      EXPECT_THAT(e.what(), ::testing::HasSubstr(expected)) << e.what();
    }
  };
  refused("slowdown", 0.1, "0.5 to 16");
  refused("slowdown", 40.0, "0.5 to 16");
  refused("slowdown", "fast", "number");
  refused("probe_busy_ranks_per_node", 1, "2 or more");
  refused("tables_busy_ranks_per_node", 0, "positive integer");
  refused("tables_busy_ranks_per_node", 1.5, "integer");
  refused("busy", 2, "busy");  // an unknown key
}

TEST(Profiles, UnknownProfileIsInvalidInput) {
  EXPECT_THROW(resolve_profile("tpu-v5"), InvalidInput);
  Json bad = to_json(resolve_profile("a100-80gb-dgx"));
  bad["provenance"] = "guessed";
  EXPECT_THROW(profile_from_json(bad, "bad"), InvalidInput);
}

}  // namespace
}  // namespace loom::core
