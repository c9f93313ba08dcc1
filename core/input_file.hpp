#pragma once
// Opening the files a user names, so that a bad one is refused at once with what is wrong with
// it: only regular files are read (a FIFO would wait forever for a writer, /dev/zero never
// ends, a directory reads as nothing), and documents read whole into memory only up to a limit.

#include <cstddef>      // std::byte
#include <cstdint>      // int64_t
#include <span>         // the buffer read_into fills
#include <string>       // paths, contents
#include <string_view>  // kinds in messages

namespace loom::core {

// JSON documents (plans, model files, profiles, checkpoint manifests) are read whole and parsed
// into a tree several times their size, so larger ones are refused before reading. The largest
// file Loom writes is a measured profile of about 100 KiB: the limit leaves a margin of 600.
inline constexpr int64_t kMaxJsonInputBytes = int64_t(64) << 20;

// A file opened for reading after fstat on its descriptor showed a regular file (checked on the
// opened descriptor, so the file cannot be swapped between the check and the read). It is
// opened with O_NONBLOCK, so that opening a FIFO returns at once and is refused instead of
// waiting for a writer. Every problem is InvalidInput: "cannot read token file 'x': it is a
// FIFO (named pipe), not a regular file", "… no such file", "… permission denied".
class RegularFile {
 public:
  // `kind` names what the file should be in messages ("token file"); empty for none.
  explicit RegularFile(const std::string& path, std::string_view kind = "");
  RegularFile(RegularFile&& other) noexcept;
  RegularFile& operator=(RegularFile&&) = delete;
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;
  ~RegularFile();

  int64_t size_bytes() const { return size_bytes_; }  // as fstat saw it when opened
  // Reads on from the current position until `buffer` is full or the file ends; returns the
  // bytes read (fewer than the buffer only when the file ended, e.g. shrank since opening).
  std::size_t read_into(std::span<std::byte> buffer);

 private:
  std::string label_;  // "token file 'x'", for messages
  int fd_ = -1;
  int64_t size_bytes_ = 0;
};

// The whole of `path` ("-": standard input, which may be a pipe), refused as soon as it is
// known to hold more than `max_bytes`: "cannot read 'x': it is 70.0 MiB (73400320 bytes); JSON
// inputs are limited to 64 MiB" (`inputs` names the kind of input, "JSON inputs"). A file is
// measured before it is read; neither a file that grows nor an endless stream is read further
// than max_bytes + 1.
std::string read_limited_file(const std::string& path, int64_t max_bytes, std::string_view inputs);

// A byte count for messages about sizes: "11 bytes", "64 MiB", "70.0 MiB (73400320 bytes)".
std::string size_text(int64_t bytes);

}  // namespace loom::core
