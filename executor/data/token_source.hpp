#pragma once
// Where training tokens come from: llm.c token shards (`.bin`) and plain text read as bytes.
// Every reader checks its file completely when it opens it (header, size, every token against
// the vocabulary), so a bad corpus is refused before any rank starts training, never found
// halfway through a run.

#include <cstdint>  // int32_t, int64_t
#include <memory>   // std::unique_ptr
#include <span>     // token lists to write
#include <string>   // paths, descriptions

namespace loom::exec {

// A read-only sequence of tokens, each in [0, vocab_size()).
class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual int64_t size() const = 0;
  virtual int32_t token(int64_t i) const = 0;  // 0 <= i < size()
  // The vocabulary every token was checked against when the source was opened.
  virtual int64_t vocab_size() const = 0;
  // One line for logs: the file, its format and how many tokens it holds.
  virtual std::string description() const = 0;
};

// llm.c's two shard formats: a 256 × int32 little-endian header (magic, version, token count,
// then zeros) followed by the tokens, little-endian.
enum class TokenShardFormat {
  gpt2,    // magic 20240520, version 1, uint16 tokens
  llama3,  // magic 20240801, version 7, uint32 tokens
};
inline constexpr int64_t kTokenShardHeaderBytes = 256 * 4;

// Reads an llm.c shard. Its size must match the header's token count exactly, and every token
// must be below `vocab_size` (the model's vocabulary: the file itself does not record one).
// Any violation is InvalidInput naming the file, what was found and what was expected.
std::unique_ptr<TokenSource> open_token_shard(const std::string& path, int64_t vocab_size);

// Reads any file as text: every byte is one token, so the vocabulary is the 256 byte values.
// A `vocab_size` below 256 is accepted when every byte of the file is below it (ASCII text
// with a 128-token model); a byte at or above it is InvalidInput naming its position.
std::unique_ptr<TokenSource> open_text_bytes(const std::string& path, int64_t vocab_size = 256);

// A `.bin` file, or any file starting with a shard magic number, is read as an llm.c shard;
// anything else as text bytes.
std::unique_ptr<TokenSource> open_tokens(const std::string& path, int64_t vocab_size);

// Writes an llm.c shard (tests and small tools; llm.c's own scripts write the real ones).
// Tokens must fit the format (uint16 for gpt2). Write failures are IoError.
void write_token_shard(const std::string& path, std::span<const int32_t> tokens,
                       TokenShardFormat format = TokenShardFormat::gpt2);

// The corpus used when no --data is given: the GNU GPL version 3 text, about 35 KB of English.
// It ships in Debian's `base-files` package, which every Debian and Ubuntu system has
// installed (it is "Essential: yes"), so `scripts/demo` trains on real text without a
// download. Read as bytes it fits a vocabulary of 256.
std::string default_corpus_path();

}  // namespace loom::exec
