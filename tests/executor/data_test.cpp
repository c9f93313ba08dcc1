// Token sources (llm.c shards, text bytes) and deterministic batches. Shards are written by
// the test itself with llm.c's header; the malformed ones live in tests/fixtures/bad_tokens/
// (NAME.bin + NAME.expected, made by make_fixtures.py there) and are all read with the GPT-2
// vocabulary of 50257.

#include "../fixture_cases.hpp"
#include "executor/data/batches.hpp"
#include "executor/data/token_source.hpp"

#include "core/error.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>  // getpid

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#ifndef LOOM_FIXTURES_DIR
#define LOOM_FIXTURES_DIR "tests/fixtures"
#endif

namespace loom::exec {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using loom::testing::refusal;


class TokenFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("loom_data_test_{}_{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes;
    return path(name);
  }
  // An llm.c header (magic, version, count, 253 zeros) followed by raw token bytes.
  std::string write_shard(const std::string& name, uint32_t magic, uint32_t version, int32_t count,
                          const std::string& tokens = "") const {
    std::string bytes(1024, '\0');
    for (int b = 0; b < 4; ++b) {
      bytes[b] = char(magic >> (8 * b));
      bytes[4 + b] = char(version >> (8 * b));
      bytes[8 + b] = char(uint32_t(count) >> (8 * b));
    }
    return write(name, bytes + tokens);
  }

  fs::path dir_;
};

TEST_F(TokenFiles, Gpt2ShardRoundTrip) {
  const std::vector<int32_t> tokens = {0, 1, 50256, 198, 42};
  write_token_shard(path("a.bin"), tokens);
  EXPECT_EQ(fs::file_size(path("a.bin")), 1024u + 2 * tokens.size());
  const auto source = open_token_shard(path("a.bin"), 50257);
  ASSERT_EQ(source->size(), 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(source->token(i), tokens[i]) << i;
  EXPECT_EQ(source->vocab_size(), 50257);
  EXPECT_THAT(source->description(), HasSubstr("GPT-2 token shard"));
  EXPECT_THAT(source->description(), HasSubstr("5 tokens, uint16"));
}

TEST_F(TokenFiles, ReadsAShardWrittenByHand) {
  // Tokens 258 and 7 as little-endian uint16, after a header spelled out byte by byte.
  write_shard("hand.bin", 20240520, 1, 2, std::string("\x02\x01\x07\x00", 4));
  const auto source = open_tokens(path("hand.bin"), 300);
  ASSERT_EQ(source->size(), 2);
  EXPECT_EQ(source->token(0), 258);
  EXPECT_EQ(source->token(1), 7);
}

TEST_F(TokenFiles, Llama3ShardHoldsUint32Tokens) {
  const std::vector<int32_t> tokens = {128000, 70000, 0, 128255};
  write_token_shard(path("l.bin"), tokens, TokenShardFormat::llama3);
  EXPECT_EQ(fs::file_size(path("l.bin")), 1024u + 4 * tokens.size());
  const auto source = open_tokens(path("l.bin"), 128256);
  ASSERT_EQ(source->size(), 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(source->token(i), tokens[i]) << i;
  EXPECT_THAT(source->description(), HasSubstr("Llama-3"));
}

TEST_F(TokenFiles, EmptyShardIsValid) {
  write_token_shard(path("e.bin"), {});
  EXPECT_EQ(open_token_shard(path("e.bin"), 10)->size(), 0);
}

TEST_F(TokenFiles, TextIsReadAsBytes) {
  write("t.txt", "Hi\xff\n");
  const auto source = open_tokens(path("t.txt"), 256);
  ASSERT_EQ(source->size(), 4);
  EXPECT_EQ(source->token(0), 'H');
  EXPECT_EQ(source->token(1), 'i');
  EXPECT_EQ(source->token(2), 255);  // bytes are unsigned tokens
  EXPECT_EQ(source->token(3), '\n');
  EXPECT_EQ(source->vocab_size(), 256);
  EXPECT_EQ(open_text_bytes(path("t.txt"))->vocab_size(), 256);
}

TEST_F(TokenFiles, TextFitsASmallerVocabularyOnlyIfEveryByteDoes) {
  write("ascii.txt", "abc");
  EXPECT_EQ(open_text_bytes(path("ascii.txt"), 128)->vocab_size(), 128);
  write("latin.txt", "ab\xe9");
  EXPECT_THAT(refusal([&] { open_text_bytes(path("latin.txt"), 128); }),
              HasSubstr("token 233 at position 2 is not below the vocabulary size 128"));
}

TEST_F(TokenFiles, OpenTokensChoosesByExtensionThenMagic) {
  write_token_shard(path("shard.tokens"), std::vector<int32_t>{5, 6});
  EXPECT_EQ(open_tokens(path("shard.tokens"), 10)->size(), 2);  // magic, not extension
  write("notes.bin", std::string(2000, 'x'));
  EXPECT_THAT(refusal([&] { open_tokens(path("notes.bin"), 256); }), HasSubstr("magic number"));
}

TEST_F(TokenFiles, MalformedShardsAreRefusedWithTheirReason) {
  const std::string two_tokens("\x01\x00\x02\x00", 4);
  struct Case {
    std::string file, expected;
  };
  const std::vector<Case> cases = {
      {write_shard("magic.bin", 20240519, 1, 2, two_tokens),
       "has magic number 20240519; expected 20240520"},
      {write_shard("version.bin", 20240520, 3, 2, two_tokens), "has version 3; expected 1"},
      {write_shard("llama.bin", 20240801, 1, 0), "has version 1; expected 7"},
      {write("header.bin", std::string(1000, '\0')), "is 1000 bytes, too short"},
      {write_shard("short.bin", 20240520, 1, 3, two_tokens),
       "needs 1024 + 3 × 2 = 1030 bytes (truncated)"},
      {write_shard("long.bin", 20240520, 1, 1, two_tokens),
       "needs 1024 + 1 × 2 = 1026 bytes (trailing"},
      {write_shard("vocab.bin", 20240520, 1, 2, two_tokens),
       "token 2 at position 1 is not below the vocabulary size 2"},
      {path("missing.bin"), "no such file"},
      {dir_.string(), "it is a directory"},
  };
  for (const Case& c : cases) {
    const std::string message = refusal([&] { open_tokens(c.file, 2); });
    EXPECT_THAT(message, HasSubstr(c.expected)) << c.file;
    EXPECT_THAT(message, HasSubstr(c.file)) << "the message names the file";
  }
}

std::vector<std::string> bad_token_names() {
  return loom::testing::fixture_case_names(fs::path(LOOM_FIXTURES_DIR) / "bad_tokens");
}

class BadTokenFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(BadTokenFixture, IsRefusedWithItsMessage) {
  const fs::path dir = fs::path(LOOM_FIXTURES_DIR) / "bad_tokens";
  const std::string expected = loom::testing::fixture_expected_text(dir, GetParam());
  ASSERT_FALSE(expected.empty()) << GetParam() << ".expected is empty";
  const std::string input = (dir / (GetParam() + ".bin")).string();
  ASSERT_TRUE(fs::exists(input)) << input;
  const std::string message = refusal([&] { open_tokens(input, 50257); });
  EXPECT_THAT(message, HasSubstr(expected));
  EXPECT_THAT(message, HasSubstr(input));
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BadTokenFixture, ::testing::ValuesIn(bad_token_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(BadTokenFixtures, AtLeastTenCases) {
  EXPECT_GE(bad_token_names().size(), 10u);
}

TEST(DefaultCorpus, ShipsWithDebianAndReadsAsBytes) {
  const auto source = open_tokens(default_corpus_path(), 256);
  EXPECT_GT(source->size(), 30000);
  EXPECT_EQ(source->token(0), ' ');  // the GPL's title line is indented
}

// token(i) = i: a row's tokens are then its offset, offset + 1, …, which makes windows visible.
class CountingTokens : public TokenSource {
 public:
  explicit CountingTokens(int64_t size) : size_(size) {}
  int64_t size() const override { return size_; }
  int32_t token(int64_t i) const override { return int32_t(i); }
  int64_t vocab_size() const override { return size_; }
  std::string description() const override { return fmt::format("counting corpus of {}", size_); }

 private:
  int64_t size_;
};

TEST(Batches, AreAFunctionOfSeedAndStepOnly) {
  const CountingTokens corpus(100000);
  const auto batch = global_batch_tokens(corpus, 7, 3, 8, 16);
  EXPECT_EQ(batch.size(), 8u * 17);
  EXPECT_EQ(batch, global_batch_tokens(corpus, 7, 3, 8, 16));
  EXPECT_NE(batch, global_batch_tokens(corpus, 7, 4, 8, 16));
  EXPECT_NE(batch, global_batch_tokens(corpus, 8, 3, 8, 16));
  // Row i does not depend on the batch size, so a larger batch extends a smaller one.
  const auto bigger = global_batch_tokens(corpus, 7, 3, 16, 16);
  EXPECT_TRUE(std::equal(batch.begin(), batch.end(), bigger.begin()));
}

TEST(Batches, RowsAreConsecutiveCorpusWindows) {
  const CountingTokens corpus(5000);
  const auto batch = global_batch_tokens(corpus, 1, 0, 4, 32);
  for (int row = 0; row < 4; ++row) {
    EXPECT_EQ(batch[row * 33], batch_row_offset(1, 0, row, 5000, 32));
    for (int j = 1; j < 33; ++j) EXPECT_EQ(batch[row * 33 + j], batch[row * 33 + j - 1] + 1);
  }
}

TEST(Batches, OffsetsCoverEveryValidStartAndNoOther) {
  std::set<int64_t> seen;
  for (int64_t step = 0; step < 200; ++step) seen.insert(batch_row_offset(42, step, 0, 10 + 3, 10));
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1, 2}));
  EXPECT_EQ(global_batch_tokens(CountingTokens(11), 0, 5, 2, 10).size(), 22u);  // exactly one row
}

// The sampling function is part of the data format: changing it would change the tokens of
// every run and break resuming a checkpoint written before the change.
TEST(Batches, OffsetsArePinned) {
  EXPECT_EQ(batch_row_offset(1234, 0, 0, 35149, 32), 17859);
  EXPECT_EQ(batch_row_offset(1234, 0, 1, 35149, 32), 21322);
  EXPECT_EQ(batch_row_offset(1234, 1, 0, 35149, 32), 32980);
}

TEST(Batches, ACorpusShorterThanOneRowIsRefused) {
  EXPECT_THAT(refusal([] { global_batch_tokens(CountingTokens(32), 0, 0, 1, 32); }),
              HasSubstr("counting corpus of 32 is shorter than one row of 33 tokens"));
  EXPECT_THAT(refusal([] { global_batch_tokens(CountingTokens(99), 0, 0, 0, 32); }),
              HasSubstr("batch size is 0"));
}

TEST(Batches, DataParallelSlicesConcatenateToTheGlobalBatch) {
  const CountingTokens corpus(100000);
  const int64_t seq = 8;
  const auto global = global_batch_tokens(corpus, 3, 11, 8, seq);
  for (int64_t dp : {1, 2, 4, 8}) {
    std::vector<int32_t> joined;
    for (int64_t rank = 0; rank < dp; ++rank) {
      const auto rows = data_parallel_rows(global, seq, dp, rank);
      EXPECT_EQ(rows.size(), global.size() / dp);
      std::vector<int32_t> rank_joined;  // the rank's microbatches rebuild its rows
      for (int64_t m = 0; m < 8 / dp; ++m) {
        const auto micro = microbatch_rows(rows, seq, 8 / dp, m);
        rank_joined.insert(rank_joined.end(), micro.begin(), micro.end());
      }
      EXPECT_TRUE(std::equal(rows.begin(), rows.end(), rank_joined.begin(), rank_joined.end()));
      joined.insert(joined.end(), rows.begin(), rows.end());
    }
    EXPECT_EQ(joined, global) << "dp " << dp;
  }
  EXPECT_THAT(refusal([&] { data_parallel_rows(global, seq, 3, 0); }),
              HasSubstr("8 rows cannot be split into 3 equal parts"));
  EXPECT_THAT(refusal([&] { data_parallel_rows(global, seq, 2, 2); }),
              HasSubstr("part 2 is out of range"));
}

TEST(Batches, TargetsAreInputsShiftedByOne) {
  const std::vector<int32_t> rows = {1, 2, 3, 4, 10, 20, 30, 40};  // two rows, seq_length 3
  const InputsAndTargets split = split_inputs_targets(rows, 3);
  EXPECT_EQ(split.inputs, (std::vector<int32_t>{1, 2, 3, 10, 20, 30}));
  EXPECT_EQ(split.targets, (std::vector<int32_t>{2, 3, 4, 20, 30, 40}));
}

}  // namespace
}  // namespace loom::exec
