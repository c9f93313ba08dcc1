// safetensors reading and writing, and checkpoint directories (shards, manifest, finding the
// newest complete step). The malformed safetensors files live in tests/fixtures/bad_safetensors/
// (NAME.safetensors + NAME.expected, made by make_fixtures.py there).

#include "../fixture_cases.hpp"
#include "core/output_file.hpp"
#include "executor/checkpoint/manifest.hpp"
#include "executor/checkpoint/safetensors.hpp"

#include "core/error.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>  // getpid

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#ifndef LOOM_FIXTURES_DIR
#define LOOM_FIXTURES_DIR "tests/fixtures"
#endif

namespace loom::exec {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using loom::testing::refusal;


std::string read_bytes(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

template <typename T>
SafeTensor raw_tensor(std::string dtype, std::vector<int64_t> shape, std::vector<T> values) {
  const auto bytes = std::as_bytes(std::span<const T>(values));
  return SafeTensor{std::move(dtype), std::move(shape), {bytes.begin(), bytes.end()}};
}

class CheckpointFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("loom_checkpoint_test_{}_{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Every rank's shard (one F32 tensor holding {step, rank}) and, unless told not to, the
  // manifest: the protocol of manifest.hpp without the barrier.
  void write_step(int64_t step, int64_t world_size, bool with_manifest = true) {
    for (int64_t rank = 0; rank < world_size; ++rank) {
      const std::vector<float> values = {float(step), float(rank)};
      write_rank_shard(dir_, step, rank, {{"w", f32_tensor({2}, values)}});
    }
    if (!with_manifest) return;
    CheckpointManifest manifest;
    manifest.step = step;
    manifest.world_size = world_size;
    manifest.plan = {{"format", "loom-plan"}, {"parallel", {{"dp", world_size}}}};
    manifest.data_seed = (uint64_t(1) << 63) + 5;  // beyond int64: the seed is a uint64
    manifest.data_next_step = step;
    manifest.rng = {{"dropout", {1, 2, 3}}};
    write_manifest(dir_, manifest);
  }

  fs::path step_dir(int64_t step) const { return checkpoint_step_directory(dir_, step); }
  int64_t latest_step() const {
    const CheckpointSearch search = latest_complete_checkpoint(dir_);
    return search.latest ? search.latest->manifest.step : -1;
  }

  fs::path dir_;
};

TEST_F(CheckpointFiles, SafetensorsRoundTripOfEveryDtype) {
  const SafeTensorMap tensors = {
      {"f32", raw_tensor<float>("F32", {2, 3}, {1, -2, 3.5f, 0, 1e-30f, 7})},
      {"f64", raw_tensor<double>("F64", {3}, {1.0 / 3, -0.0, 1e300})},
      {"bf16", raw_tensor<uint16_t>("BF16", {2, 2}, {0x3fc0, 0xbf80, 0x0000, 0x7f80})},
      {"i32", raw_tensor<int32_t>("I32", {4}, {-1, 0, 1, 2147483647})},
      {"i64", raw_tensor<int64_t>("I64", {}, {-9000000000})},  // a scalar
      {"empty", raw_tensor<float>("F32", {0, 5}, {})},
  };
  write_safetensors(path("all.safetensors"), tensors, {{"step", "10"}, {"note", "ok"}});
  const SafeTensorsFile file = read_safetensors(path("all.safetensors"));
  EXPECT_EQ(file.metadata, (SafeTensorMetadata{{"step", "10"}, {"note", "ok"}}));
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    const SafeTensor& read = file.tensor(name);
    EXPECT_EQ(read.dtype, tensor.dtype) << name;
    EXPECT_EQ(read.shape, tensor.shape) << name;
    EXPECT_EQ(read.bytes, tensor.bytes) << name;
  }
  EXPECT_EQ(file.f32("bf16"), (std::vector<float>{1.5f, -1.0f, 0.0f, INFINITY}));
  EXPECT_EQ(file.f32("f64")[0], float(1.0 / 3));
  EXPECT_THAT(refusal([&] { file.f32("i32"); }),
              HasSubstr("tensor 'i32' is I32; expected a floating-point"));
  EXPECT_THAT(refusal([&] { file.tensor("nope"); }), HasSubstr("has no tensor 'nope'"));
  EXPECT_THAT(refusal([&] { read_safetensors(path("nope")); }), HasSubstr("no such file"));
  EXPECT_THAT(refusal([&] { read_safetensors(dir_.string()); }), HasSubstr("is a directory"));
}

TEST_F(CheckpointFiles, SafetensorsLayoutIsPaddedAndAligned) {
  const std::vector<float> values = {1, 2, 3};
  write_safetensors(path("a.safetensors"), {{"a", f32_tensor({3}, values)}}, {{"k", "v"}});
  const std::string bytes = read_bytes(path("a.safetensors"));
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  EXPECT_EQ(header_length % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_length + 12);
  EXPECT_EQ(bytes.substr(8, 16), "{\"__metadata__\":");
  float first;
  std::memcpy(&first, bytes.data() + 8 + header_length, 4);
  EXPECT_EQ(first, 1.0f);
  for (const auto& entry : fs::directory_iterator(dir_))
    EXPECT_FALSE(core::is_temporary_file_name(entry.path().filename().string())) << entry.path();
}

// A file as another writer may produce it: no padding, entries not in name order.
TEST_F(CheckpointFiles, ReadsAFileWrittenByHand) {
  const std::string header =
      R"({"wte.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},)"
      R"("h.0.ln_1.bias":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})";
  std::string bytes(8, '\0');
  bytes[0] = char(header.size());
  const float floats[2] = {0.25f, -4.0f};
  const int64_t integer = 77;
  bytes += header + std::string(reinterpret_cast<const char*>(floats), 8) +
           std::string(reinterpret_cast<const char*>(&integer), 8);
  std::ofstream(path("hf.safetensors"), std::ios::binary) << bytes;
  const SafeTensorsFile file = read_safetensors(path("hf.safetensors"));
  EXPECT_EQ(file.f32("wte.weight"), (std::vector<float>{0.25f, -4.0f}));
  EXPECT_EQ(file.tensor("wte.weight").shape, (std::vector<int64_t>{1, 2}));
  int64_t read_integer;
  std::memcpy(&read_integer, file.tensor("h.0.ln_1.bias").bytes.data(), 8);
  EXPECT_EQ(read_integer, 77);
  EXPECT_TRUE(file.metadata.empty());
}

TEST_F(CheckpointFiles, WritingRefusesInconsistentTensorsAndReportsIoErrors) {
  EXPECT_THAT(refusal([&] {
                write_safetensors(path("x"), {{"a", raw_tensor<float>("F32", {3}, {1, 2})}});
              }),
              HasSubstr("tensor 'a' has 8 bytes but shape [3] of F32 needs 12"));
  EXPECT_THAT(refusal([&] {
                write_safetensors(path("x"), {{"a", raw_tensor<float>("F16", {1}, {1})}});
              }),
              HasSubstr("dtype 'F16'"));
  EXPECT_FALSE(fs::exists(path("x")));
  EXPECT_THAT(refusal([&] { write_safetensors(path("no/such/dir/x.safetensors"), {}); }),
              HasSubstr("dir' does not exist"));
  EXPECT_TRUE(fs::is_empty(dir_)) << "no temporary is left behind";
}

std::vector<std::string> bad_safetensors_names() {
  return loom::testing::fixture_case_names(fs::path(LOOM_FIXTURES_DIR) / "bad_safetensors");
}

class BadSafetensorsFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(BadSafetensorsFixture, IsRefusedWithItsMessage) {
  const fs::path dir = fs::path(LOOM_FIXTURES_DIR) / "bad_safetensors";
  const std::string expected = loom::testing::fixture_expected_text(dir, GetParam());
  ASSERT_FALSE(expected.empty()) << GetParam() << ".expected is empty";
  const std::string input = (dir / (GetParam() + ".safetensors")).string();
  ASSERT_TRUE(fs::exists(input)) << input;
  const std::string message = refusal([&] { read_safetensors(input); });
  EXPECT_THAT(message, HasSubstr(expected));
  EXPECT_THAT(message, HasSubstr(input));
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BadSafetensorsFixture,
                         ::testing::ValuesIn(bad_safetensors_names()), [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(BadSafetensorsFixtures, AtLeastTwelveCases) {
  EXPECT_GE(bad_safetensors_names().size(), 12u);
}

// Damaged checkpoint manifests (tests/fixtures/bad_manifests/, made by make_fixtures.py there):
// each is refused by read_manifest with one line naming the file and the problem, and the
// resume search reports the step as damaged instead of resuming from it.
std::vector<std::string> bad_manifest_names() {
  return loom::testing::fixture_case_names(fs::path(LOOM_FIXTURES_DIR) / "bad_manifests");
}

class BadManifestFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(BadManifestFixture, IsRefusedWithItsMessage) {
  const fs::path fixtures = fs::path(LOOM_FIXTURES_DIR) / "bad_manifests";
  const std::string expected = loom::testing::fixture_expected_text(fixtures, GetParam());
  ASSERT_FALSE(expected.empty()) << GetParam() << ".expected is empty";
  const fs::path checkpoints = fs::temp_directory_path() / fmt::format("loom_bad_manifest_{}_{}", ::getpid(), GetParam());
  const fs::path step = checkpoint_step_directory(checkpoints, 2);
  fs::remove_all(checkpoints);
  fs::create_directories(step);
  fs::copy_file(fixtures / (GetParam() + ".json"), step / "manifest.json");
  const std::string before = read_bytes(step / "manifest.json");
  const std::string message = refusal([&] { read_manifest(step); });
  EXPECT_THAT(message, HasSubstr(expected));
  EXPECT_THAT(message, HasSubstr((step / "manifest.json").string()));
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
  // Resuming never takes a damaged step (or refuses outright when the file is another format's).
  try {
    const CheckpointSearch search = latest_complete_checkpoint(checkpoints);
    EXPECT_FALSE(search.latest) << "resumed from a damaged manifest";
  } catch (const InvalidInput& error) {
    EXPECT_THAT(error.what(), HasSubstr("format"));
  }
  EXPECT_EQ(read_bytes(step / "manifest.json"), before) << "the damaged file is left as it was";
  fs::remove_all(checkpoints);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BadManifestFixture, ::testing::ValuesIn(bad_manifest_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(BadManifestFixtures, AtLeastTwentyCases) { EXPECT_GE(bad_manifest_names().size(), 20u); }

TEST_F(CheckpointFiles, NamesFollowTheLayout) {
  EXPECT_EQ(checkpoint_step_directory(dir_, 10), dir_ / "step-000010");
  EXPECT_EQ(rank_shard_name(3), "rank-00003.safetensors");
}

TEST_F(CheckpointFiles, LatestIsTheNewestCompleteStep) {
  EXPECT_FALSE(latest_complete_checkpoint(dir_ / "not-yet").latest)
      << "no directory, no checkpoint";
  EXPECT_FALSE(latest_complete_checkpoint(dir_).latest);
  write_step(5, 2);
  write_step(10, 2);
  const CheckpointSearch search = latest_complete_checkpoint(dir_);
  ASSERT_TRUE(search.latest);
  EXPECT_TRUE(search.skipped.empty());
  const CheckpointManifest& manifest = search.latest->manifest;
  EXPECT_EQ(search.latest->directory, step_dir(10));
  EXPECT_EQ(manifest.step, 10);
  EXPECT_EQ(manifest.world_size, 2);
  EXPECT_EQ(manifest.data_seed, (uint64_t(1) << 63) + 5);
  EXPECT_EQ(manifest.data_next_step, 10);
  EXPECT_EQ(manifest.plan["parallel"]["dp"], 2);
  EXPECT_EQ(manifest.rng["dropout"][2], 3);
  EXPECT_EQ(manifest.shards,
            (std::vector<std::string>{"rank-00000.safetensors", "rank-00001.safetensors"}));
  EXPECT_FALSE(manifest.created_at.empty());
  const SafeTensorsFile shard = read_rank_shard(*search.latest, 1);
  EXPECT_EQ(shard.f32("w"), (std::vector<float>{10, 1}));
  EXPECT_EQ(shard.metadata.at("format"), "loom-checkpoint-shard");
  // The manifest is a document of its own format, readable top-down.
  const std::string text = read_bytes(step_dir(10) / "manifest.json");
  EXPECT_EQ(text.find("\"format\": \"loom-checkpoint\""), 4u);
  EXPECT_THAT(text, HasSubstr("\"version\": 1"));
}

TEST_F(CheckpointFiles, AStepWithoutManifestOrWithAMissingShardIsSkipped) {
  write_step(5, 2);
  write_step(10, 2, /*with_manifest=*/false);
  write_step(15, 2);
  fs::remove(step_dir(15) / "rank-00001.safetensors");
  const CheckpointSearch search = latest_complete_checkpoint(dir_);
  ASSERT_TRUE(search.latest);
  EXPECT_EQ(search.latest->manifest.step, 5);
  ASSERT_EQ(search.skipped.size(), 2u);
  EXPECT_EQ(search.skipped[0], "step-000015: shard rank-00001.safetensors is missing");
  EXPECT_THAT(search.skipped[1], HasSubstr("step-000010: no manifest.json"));
}

TEST_F(CheckpointFiles, TemporariesAndStrayNamesAreIgnored) {
  write_step(5, 1);
  fs::create_directories(step_dir(20));
  std::ofstream(step_dir(20) / "manifest.json.tmp-4242") << "{}";  // a crash before the rename
  std::ofstream(step_dir(20) / "rank-00000.safetensors.tmp-4242") << "half";
  fs::create_directories(dir_ / "step-000030.tmp-1");
  std::ofstream(dir_ / "step-000040") << "a file, not a directory";
  std::ofstream(dir_ / "notes.txt") << "hello";
  EXPECT_EQ(latest_step(), 5);
}

TEST_F(CheckpointFiles, ADamagedNewestManifestFallsBackToThePreviousStep) {
  write_step(5, 1);
  write_step(10, 1);
  std::ofstream(step_dir(10) / "manifest.json") << "{\"format\": \"loom-checkpoint\", \"vers";
  CheckpointSearch search = latest_complete_checkpoint(dir_);
  ASSERT_TRUE(search.latest);
  EXPECT_EQ(search.latest->manifest.step, 5);
  ASSERT_EQ(search.skipped.size(), 1u);
  EXPECT_THAT(search.skipped[0], HasSubstr("step-000010: damaged manifest"));
  EXPECT_THAT(search.skipped[0], HasSubstr("malformed JSON"));

  write_step(10, 1);  // a valid document that misses a field is damage too
  core::Json manifest = core::parse_json_text(read_bytes(step_dir(10) / "manifest.json"), "m");
  manifest.erase("rng");
  std::ofstream(step_dir(10) / "manifest.json") << manifest.dump();
  search = latest_complete_checkpoint(dir_);
  EXPECT_EQ(search.latest->manifest.step, 5);
  EXPECT_THAT(search.skipped.at(0), HasSubstr("rng is missing"));

  manifest = core::parse_json_text(read_bytes(step_dir(5) / "manifest.json"), "m");
  std::ofstream(step_dir(10) / "manifest.json") << manifest.dump();  // step 5's, in step 10
  EXPECT_EQ(latest_complete_checkpoint(dir_).skipped.at(0),
            "step-000010: its manifest is for step 5");
}

TEST_F(CheckpointFiles, AManifestOfAnotherFormatOrVersionIsRefused) {
  write_step(5, 1);
  write_step(10, 1);
  core::Json manifest = core::parse_json_text(read_bytes(step_dir(10) / "manifest.json"), "m");
  manifest["version"] = 2;
  std::ofstream(step_dir(10) / "manifest.json") << manifest.dump();
  EXPECT_THAT(
      refusal([&] { latest_complete_checkpoint(dir_); }),
      HasSubstr("format 'loom-checkpoint' version 2; expected 'loom-checkpoint' version 1"));
  manifest["version"] = 1;
  manifest["format"] = "other-checkpoint";
  std::ofstream(step_dir(10) / "manifest.json") << manifest.dump();
  EXPECT_THAT(refusal([&] { read_manifest(step_dir(10)); }),
              HasSubstr(step_dir(10).string() + "/manifest.json': format 'other-checkpoint'"));
}

TEST_F(CheckpointFiles, WritingAStepAgainRemovesTheTemporariesOfWritersThatDied) {
  // Rank 0 and the manifest writer died midway (MPI_Abort, SIGKILL): their temporaries hold space.
  fs::create_directories(step_dir(10));
  std::ofstream(step_dir(10) / "rank-00000.safetensors.tmp-4242") << "half of a shard";
  std::ofstream(step_dir(10) / "rank-00000.safetensors.tmp-4243") << "another";
  std::ofstream(step_dir(10) / "manifest.json.tmp-4244") << "{";
  std::ofstream(step_dir(10) / "rank-00001.safetensors.tmp-4245") << "rank 1's, still being written";
  write_rank_shard(dir_, 10, 0, {{"w", f32_tensor({1}, std::vector<float>{1})}});
  EXPECT_FALSE(fs::exists(step_dir(10) / "rank-00000.safetensors.tmp-4242"));
  EXPECT_FALSE(fs::exists(step_dir(10) / "rank-00000.safetensors.tmp-4243"));
  EXPECT_TRUE(fs::exists(step_dir(10) / "rank-00001.safetensors.tmp-4245")) << "another rank's file is its own";
  write_rank_shard(dir_, 10, 1, {{"w", f32_tensor({1}, std::vector<float>{2})}});
  EXPECT_FALSE(fs::exists(step_dir(10) / "rank-00001.safetensors.tmp-4245"));
  CheckpointManifest manifest;
  manifest.step = 10;
  manifest.world_size = 2;
  manifest.plan = {{"format", "loom-plan"}, {"parallel", {{"dp", 2}}}};
  manifest.data_next_step = 10;
  write_manifest(dir_, manifest);
  EXPECT_FALSE(fs::exists(step_dir(10) / "manifest.json.tmp-4244"));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(step_dir(10))) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"manifest.json", "rank-00000.safetensors", "rank-00001.safetensors"}));
  EXPECT_EQ(latest_step(), 10);
}

TEST_F(CheckpointFiles, RewritingAStepMakesItIncompleteUntilItsNewManifest) {
  write_step(5, 2);
  write_step(10, 2);
  write_rank_shard(dir_, 10, 0, {{"w", f32_tensor({1}, std::vector<float>{99})}});
  EXPECT_EQ(latest_step(), 5) << "old manifest removed with the first new shard";
  write_step(10, 2);
  EXPECT_EQ(latest_step(), 10);
}

TEST_F(CheckpointFiles, TheManifestWaitsForEveryShard) {
  write_rank_shard(dir_, 3, 0, {});
  CheckpointManifest manifest;
  manifest.step = 3;
  manifest.world_size = 2;
  EXPECT_THAT(refusal<IoError>([&] { write_manifest(dir_, manifest); }),
              HasSubstr("rank-00001.safetensors' is missing"));
  EXPECT_FALSE(fs::exists(step_dir(3) / "manifest.json"));
}

TEST_F(CheckpointFiles, AShardInTheWrongPlaceIsRefused) {
  write_step(10, 2);
  fs::copy_file(step_dir(10) / "rank-00001.safetensors", step_dir(10) / "rank-00000.safetensors",
                fs::copy_options::overwrite_existing);
  const Checkpoint checkpoint = *latest_complete_checkpoint(dir_).latest;
  EXPECT_THAT(refusal([&] { read_rank_shard(checkpoint, 0); }),
              HasSubstr("step 10 rank 1; expected 'loom-checkpoint-shard' step 10 rank 0"));
  EXPECT_THAT(refusal([&] {
                write_rank_shard(dir_, 1, 0, {}, {{"rank", "7"}});
              }),
              HasSubstr("key 'rank' is reserved"));
}

}  // namespace
}  // namespace loom::exec
