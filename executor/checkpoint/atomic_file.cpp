#include "executor/checkpoint/atomic_file.hpp"

#include "core/error.hpp"  // loom::IoError

#include <fcntl.h>   // open
#include <unistd.h>  // write, fsync, close, getpid

#include <cerrno>   // errno
#include <cstdio>   // std::rename
#include <cstring>  // std::strerror
#include <utility>  // std::move

namespace loom::exec {

namespace fs = std::filesystem;

namespace {
constexpr std::string_view kTemporaryMarker = ".tmp-";
}

AtomicFileWriter::AtomicFileWriter(fs::path target)
    : target_(std::move(target)),
      temporary_(target_.string() + std::string(kTemporaryMarker) + std::to_string(::getpid())) {
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError("cannot write '{}': {}", temporary_.string(), std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!published_) {
    std::error_code ignored;  // a destructor must not throw; the temporary is only litter
    fs::remove(temporary_, ignored);
  }
}

void AtomicFileWriter::write(std::span<const std::byte> bytes) {
  const std::byte* data = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t written = ::write(fd_, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0)
      throw IoError("cannot write '{}': {}", temporary_.string(), std::strerror(errno));
    data += written;
    left -= size_t(written);
  }
}

void AtomicFileWriter::write(std::string_view text) {
  write(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

void AtomicFileWriter::publish() {
  if (::fsync(fd_) != 0)
    throw IoError("cannot write '{}': fsync failed: {}", temporary_.string(), std::strerror(errno));
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0)
    throw IoError("cannot write '{}': close failed: {}", temporary_.string(), std::strerror(errno));
  if (std::rename(temporary_.c_str(), target_.c_str()) != 0)
    throw IoError("cannot rename '{}' to '{}': {}", temporary_.string(), target_.string(),
                  std::strerror(errno));
  published_ = true;
  sync_directory(target_.has_parent_path() ? target_.parent_path() : fs::path("."));
}

bool is_temporary_file_name(const std::string& name) {
  return name.find(kTemporaryMarker) != std::string::npos;
}

void remove_stale_temporaries(const fs::path& target) {
  const fs::path directory = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + std::string(kTemporaryMarker);
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(directory, error)) {
    if (!entry.path().filename().string().starts_with(prefix)) continue;
    if (!fs::remove(entry.path(), error))
      throw IoError("cannot remove the stale temporary '{}': {}", entry.path().string(), error.message());
  }
  if (error) throw IoError("cannot list '{}': {}", directory.string(), error.message());
}

void sync_directory(const fs::path& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  // Some filesystems refuse fsync on a directory (EINVAL); the rename has still happened.
  ::fsync(fd);
  ::close(fd);
}

}  // namespace loom::exec
