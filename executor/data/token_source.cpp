#include "executor/data/token_source.hpp"

#include "core/error.hpp"        // loom::InvalidInput, loom::IoError
#include "core/input_file.hpp"   // core::RegularFile
#include "core/output_file.hpp"  // write_output_file

#include <fmt/format.h>  // fmt::format

#include <cerrno>      // errno for write failures
#include <cstring>     // std::strerror
#include <filesystem>  // extension, file size
#include <fstream>     // reading and writing files
#include <limits>      // uint16 range
#include <span>        // buffers read into
#include <utility>     // std::move
#include <vector>      // file contents

namespace loom::exec {
namespace {

constexpr uint32_t kGpt2Magic = 20240520;
constexpr uint32_t kGpt2Version = 1;
constexpr uint32_t kLlama3Magic = 20240801;
constexpr uint32_t kLlama3Version = 7;

// Tokens kept as the file's own little-endian bytes (1, 2 or 4 per token) and decoded on
// access: a GPT-2 shard of 100 M tokens then costs its 200 MB, not 400 MB as int32.
class FileTokens : public TokenSource {
 public:
  FileTokens(std::vector<unsigned char> bytes, int64_t offset, int width, int64_t vocab,
             std::string description)
      : bytes_(std::move(bytes)),
        offset_(offset),
        width_(width),
        size_((int64_t(bytes_.size()) - offset) / width),
        vocab_(vocab),
        description_(std::move(description)) {}

  int64_t size() const override { return size_; }
  int32_t token(int64_t i) const override { return int32_t(decode(i)); }
  int64_t vocab_size() const override { return vocab_; }
  std::string description() const override { return description_; }

  uint32_t decode(int64_t i) const {
    const unsigned char* p = bytes_.data() + offset_ + i * width_;
    uint32_t value = 0;
    for (int b = width_ - 1; b >= 0; --b) value = (value << 8) | p[b];
    return value;
  }

  // Refuses the first token at or above the vocabulary, naming its position.
  void check_vocabulary(const std::string& path) const {
    for (int64_t i = 0; i < size_; ++i) {
      if (int64_t(decode(i)) >= vocab_)
        throw InvalidInput("'{}': token {} at position {} is not below the vocabulary size {}",
                           path, decode(i), i, vocab_);
    }
  }

 private:
  std::vector<unsigned char> bytes_;
  int64_t offset_;
  int width_;
  int64_t size_;
  int64_t vocab_;
  std::string description_;
};

// Token files may be GBs, so no size limit; but only a regular file is read (a FIFO would
// block, /dev/zero would never end), and every problem is refused naming the file.
std::vector<unsigned char> read_file_bytes(const std::string& path) {
  core::RegularFile file(path, "token file");
  std::vector<unsigned char> bytes(static_cast<std::size_t>(file.size_bytes()));
  bytes.resize(file.read_into(std::as_writable_bytes(std::span(bytes))));
  return bytes;
}

uint32_t header_word(const std::vector<unsigned char>& bytes, int index) {
  const unsigned char* p = bytes.data() + 4 * index;
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

void check_vocab_argument(const std::string& path, int64_t vocab_size) {
  if (vocab_size < 1 || vocab_size > int64_t(std::numeric_limits<int32_t>::max()) + 1)
    throw InvalidInput("cannot read '{}' with a vocabulary of {}; expected 1 to 2^31", path,
                       vocab_size);
}

}  // namespace

std::unique_ptr<TokenSource> open_token_shard(const std::string& path, int64_t vocab_size) {
  check_vocab_argument(path, vocab_size);
  std::vector<unsigned char> bytes = read_file_bytes(path);
  const int64_t file_bytes = int64_t(bytes.size());
  if (file_bytes < kTokenShardHeaderBytes)
    throw InvalidInput(
        "'{}' is {} bytes, too short for an llm.c token shard's {}-byte header (256 × int32)", path,
        file_bytes, kTokenShardHeaderBytes);

  const uint32_t magic = header_word(bytes, 0), version = header_word(bytes, 1);
  int width = 0;
  if (magic == kGpt2Magic) {
    if (version != kGpt2Version)
      throw InvalidInput("'{}': llm.c GPT-2 token shard (magic {}) has version {}; expected {}",
                         path, magic, version, kGpt2Version);
    width = 2;
  } else if (magic == kLlama3Magic) {
    if (version != kLlama3Version)
      throw InvalidInput("'{}': llm.c Llama-3 token shard (magic {}) has version {}; expected {}",
                         path, magic, version, kLlama3Version);
    width = 4;
  } else {
    throw InvalidInput(
        "'{}' has magic number {}; expected {} (llm.c GPT-2 tokens) or {} (llm.c Llama-3 tokens)",
        path, magic, kGpt2Magic, kLlama3Magic);
  }

  // The count is an int32 in llm.c's header; a negative one can only be corruption.
  const int64_t count = int32_t(header_word(bytes, 2));
  if (count < 0)
    throw InvalidInput("'{}': header token count is {}; expected a non-negative count", path,
                       count);
  const int64_t expected_bytes = kTokenShardHeaderBytes + count * width;
  if (file_bytes != expected_bytes)
    throw InvalidInput(
        "'{}' is {} bytes but its header's token count {} needs {} + {} × {} = {} bytes ({})", path,
        file_bytes, count, kTokenShardHeaderBytes, count, width, expected_bytes,
        file_bytes < expected_bytes ? "truncated" : "trailing bytes after the tokens");

  auto tokens = std::make_unique<FileTokens>(
      std::move(bytes), kTokenShardHeaderBytes, width, vocab_size,
      fmt::format("llm.c {} token shard '{}' ({} tokens, uint{}, vocabulary {})",
                  width == 2 ? "GPT-2" : "Llama-3", path, count, width * 8, vocab_size));
  tokens->check_vocabulary(path);
  return tokens;
}

std::unique_ptr<TokenSource> open_text_bytes(const std::string& path, int64_t vocab_size) {
  check_vocab_argument(path, vocab_size);
  std::vector<unsigned char> bytes = read_file_bytes(path);
  const int64_t count = int64_t(bytes.size());
  auto tokens = std::make_unique<FileTokens>(
      std::move(bytes), 0, 1, vocab_size,
      fmt::format("text '{}' read as bytes ({} tokens, vocabulary {})", path, count, vocab_size));
  tokens->check_vocabulary(path);
  return tokens;
}

std::unique_ptr<TokenSource> open_tokens(const std::string& path, int64_t vocab_size) {
  // Opened before sniffing, so that a directory, a FIFO or a device is refused as what it is.
  core::RegularFile file(path, "token file");
  if (std::filesystem::path(path).extension() == ".bin") return open_token_shard(path, vocab_size);
  // Without the extension, the first four bytes decide. UTF-8 text never starts with a shard
  // magic: its first byte (0x88 or 0xa1) is a continuation byte, which cannot begin text.
  unsigned char first[4] = {};
  if (file.read_into(std::as_writable_bytes(std::span(first))) == 4) {
    const uint32_t magic = uint32_t(first[0]) | uint32_t(first[1]) << 8 | uint32_t(first[2]) << 16 |
                           uint32_t(first[3]) << 24;
    if (magic == kGpt2Magic || magic == kLlama3Magic) return open_token_shard(path, vocab_size);
  }
  return open_text_bytes(path, vocab_size);
}

void write_token_shard(const std::string& path, std::span<const int32_t> tokens,
                       TokenShardFormat format) {
  const bool gpt2 = format == TokenShardFormat::gpt2;
  const int width = gpt2 ? 2 : 4;
  if (tokens.size() > size_t(std::numeric_limits<int32_t>::max()))
    throw InvalidInput("cannot write '{}': {} tokens exceed the header's int32 count", path,
                       tokens.size());
  std::vector<unsigned char> bytes(kTokenShardHeaderBytes + tokens.size() * width, 0);
  auto put = [&](size_t offset, uint32_t value, int n) {
    for (int b = 0; b < n; ++b) bytes[offset + b] = (unsigned char)(value >> (8 * b));
  };
  put(0, gpt2 ? kGpt2Magic : kLlama3Magic, 4);
  put(4, gpt2 ? kGpt2Version : kLlama3Version, 4);
  put(8, uint32_t(tokens.size()), 4);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || (gpt2 && tokens[i] > std::numeric_limits<uint16_t>::max()))
      throw InvalidInput("cannot write '{}': token {} at position {} does not fit uint{}", path,
                         tokens[i], i, width * 8);
    put(kTokenShardHeaderBytes + i * width, uint32_t(tokens[i]), width);
  }
  core::write_output_file(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::string default_corpus_path() {
  return "/usr/share/common-licenses/GPL-3";
}

}  // namespace loom::exec
