#include "core/input_file.hpp"

#include "core/error.hpp"      // loom::InvalidInput
#include "core/file_kind.hpp"  // file_kind_text

#include <fmt/format.h>  // fmt::format

#include <fcntl.h>     // open, O_NONBLOCK
#include <poll.h>      // poll, for a non-blocking standard input
#include <sys/stat.h>  // fstat, S_ISREG and the other file types
#include <unistd.h>    // read, close, STDIN_FILENO

#include <algorithm>  // std::min
#include <cerrno>     // errno
#include <cstring>    // std::strerror
#include <utility>    // std::exchange

namespace loom::core {
namespace {

// errno after a failed open or read, in the user's words.
std::string input_file_errno_text(int error) {
  switch (error) {
    case ENOENT: return "no such file";
    case EACCES:
    case EPERM: return "permission denied";
    case ENOTDIR: return "a part of the path is not a directory";
    case ENAMETOOLONG: return "the file name is too long";
    case ELOOP: return "too many levels of symbolic links";
    case EISDIR: return "it is a directory, not a regular file";
    default: return std::strerror(error);
  }
}

std::string input_file_label(const std::string& path, std::string_view kind) {
  if (path == "-") return "standard input";
  return kind.empty() ? fmt::format("'{}'", path) : fmt::format("{} '{}'", kind, path);
}

// read(2) until `buffer` is full or the input ends. A descriptor left non-blocking by whoever
// passed it (a standard input set O_NONBLOCK by the shell's other users) waits in poll.
std::size_t read_fully(int fd, std::span<std::byte> buffer, const std::string& label) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.data() + done, buffer.size() - done);
    if (n > 0) {
      done += std::size_t(n);
    } else if (n == 0) {
      break;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd ready{fd, POLLIN, 0};
      ::poll(&ready, 1, -1);
    } else {
      throw InvalidInput("cannot read {}: {}", label, input_file_errno_text(errno));
    }
  }
  return done;
}

// Reads with `read_into` (which fills a buffer and returns the bytes read) to the end, refusing
// the input once it holds more than max_bytes: never more than max_bytes + 1 are read.
template <typename ReadInto>
std::string read_up_to(ReadInto read_into, int64_t expected_bytes, int64_t max_bytes, const std::string& label,
                       std::string_view inputs) {
  constexpr std::size_t kChunkBytes = std::size_t(1) << 20;
  std::string contents;
  contents.reserve(std::size_t(std::min(expected_bytes, max_bytes)) + 1);
  // The first read asks for the size expected and one byte more (which shows the end): a small
  // file is read without zero-filling a whole chunk first. Later reads, for what grew or what a
  // pipe holds, are a chunk at a time.
  std::size_t chunk = expected_bytes > 0 ? std::size_t(std::min(expected_bytes, max_bytes)) + 1 : std::size_t(4096);
  while (true) {
    const std::size_t wanted = std::min<std::size_t>(chunk, std::size_t(max_bytes) + 1 - contents.size());
    chunk = kChunkBytes;
    const std::size_t before = contents.size();
    contents.resize(before + wanted);
    const std::size_t got = read_into(std::as_writable_bytes(std::span(contents.data() + before, wanted)));
    contents.resize(before + got);
    if (int64_t(contents.size()) > max_bytes)
      throw InvalidInput("cannot read {}: it is more than {}; {} are limited to {}", label, size_text(max_bytes),
                         inputs, size_text(max_bytes));
    if (got < wanted) return contents;
  }
}

}  // namespace

std::string size_text(int64_t bytes) {
  constexpr int64_t kMebibyte = int64_t(1) << 20;
  if (bytes < kMebibyte) return fmt::format("{} bytes", bytes);
  if (bytes % kMebibyte == 0) return fmt::format("{} MiB", bytes / kMebibyte);
  // One decimal can round to the limit itself ("64.0 MiB"): the byte count shows the excess.
  return fmt::format("{:.1f} MiB ({} bytes)", double(bytes) / double(kMebibyte), bytes);
}

RegularFile::RegularFile(const std::string& path, std::string_view kind) : label_(input_file_label(path, kind)) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait until a writer opens it.
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd_ < 0) {
    const int error = errno;
    // A socket cannot be opened at all (ENXIO); say what the path is, where it is not a file.
    struct stat status {};
    if (error != ENOENT && ::stat(path.c_str(), &status) == 0 && !S_ISREG(status.st_mode))
      throw InvalidInput("cannot read {}: it is {}, not a regular file", label_, file_kind_text(status.st_mode));
    throw InvalidInput("cannot read {}: {}", label_, input_file_errno_text(error));
  }
  struct stat status {};
  if (::fstat(fd_, &status) != 0) {
    const int error = errno;
    ::close(std::exchange(fd_, -1));
    throw InvalidInput("cannot read {}: {}", label_, input_file_errno_text(error));
  }
  if (!S_ISREG(status.st_mode)) {
    ::close(std::exchange(fd_, -1));
    throw InvalidInput("cannot read {}: it is {}, not a regular file", label_, file_kind_text(status.st_mode));
  }
  size_bytes_ = int64_t(status.st_size);
}

RegularFile::RegularFile(RegularFile&& other) noexcept
    : label_(std::move(other.label_)), fd_(std::exchange(other.fd_, -1)), size_bytes_(other.size_bytes_) {}

RegularFile::~RegularFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::size_t RegularFile::read_into(std::span<std::byte> buffer) { return read_fully(fd_, buffer, label_); }

std::string read_limited_file(const std::string& path, int64_t max_bytes, std::string_view inputs) {
  if (path == "-") {
    // Standard input may be a pipe, whose size is known only at its end; a redirected file is
    // measured first, as below.
    struct stat status {};
    const bool regular = ::fstat(STDIN_FILENO, &status) == 0 && S_ISREG(status.st_mode);
    if (regular && int64_t(status.st_size) > max_bytes)
      throw InvalidInput("cannot read standard input: it is {}; {} are limited to {}",
                         size_text(int64_t(status.st_size)), inputs, size_text(max_bytes));
    const std::string label = "standard input";
    return read_up_to([&](std::span<std::byte> buffer) { return read_fully(STDIN_FILENO, buffer, label); },
                      regular ? int64_t(status.st_size) : 0, max_bytes, label, inputs);
  }
  RegularFile file(path);
  if (file.size_bytes() > max_bytes)
    throw InvalidInput("cannot read '{}': it is {}; {} are limited to {}", path, size_text(file.size_bytes()), inputs,
                       size_text(max_bytes));
  // Read to the end rather than to the size fstat gave: files in /proc report 0 bytes, and a
  // file may grow while it is read.
  return read_up_to([&](std::span<std::byte> buffer) { return file.read_into(buffer); }, file.size_bytes(), max_bytes,
                    fmt::format("'{}'", path), inputs);
}

}  // namespace loom::core
