#include "core/output_file.hpp"

#include "core/error.hpp"              // loom::InvalidInput, loom::IoError
#include "core/file_kind.hpp"          // file_kind_text
#include "core/temporary_cleanup.hpp"  // TemporaryRegistration

#include <fcntl.h>     // open
#include <sys/stat.h>  // stat, fchmod
#include <unistd.h>    // write, fsync, close, getpid, access

#include <algorithm>  // std::mismatch
#include <atomic>     // the temporaries' counter
#include <cerrno>    // errno
#include <cstdio>    // std::rename, stdout
#include <cstring>   // std::strerror
#include <iostream>  // std::cout
#include <optional>  // a target that may not exist
#include <utility>   // std::move

namespace loom::core {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kTemporaryMarker = ".tmp-";

std::optional<struct stat> stat_of(const fs::path& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) return std::nullopt;
  return status;
}

// The file a target names: symbolic links followed (a link's target is what gets replaced), and
// made absolute, so that paths to one file compare equal whichever way they were written.
fs::path resolved_target(const fs::path& target) {
  std::error_code error;
  fs::path resolved = fs::weakly_canonical(fs::absolute(target, error), error);
  return error ? fs::absolute(target) : resolved;
}

fs::path directory_of(const fs::path& resolved) {
  return resolved.has_parent_path() ? resolved.parent_path() : fs::path(".");
}

bool is_inside(const fs::path& path, const fs::path& directory) {
  auto [end, rest] = std::mismatch(directory.begin(), directory.end(), path.begin(), path.end());
  return end == directory.end() && rest != path.end();
}

void refuse_inputs(const fs::path& target, const fs::path& resolved, std::span<const fs::path> inputs) {
  const std::optional<struct stat> target_status = stat_of(resolved);
  for (const fs::path& input : inputs) {
    if (input.empty() || input == kStandardOutputName) continue;
    const fs::path input_resolved = resolved_target(input);
    const std::optional<struct stat> input_status = stat_of(input_resolved);
    // Hard links and bind mounts are the same file under another name: compare inodes too.
    const bool same_inode = target_status && input_status && target_status->st_dev == input_status->st_dev &&
                            target_status->st_ino == input_status->st_ino;
    if (same_inode || resolved == input_resolved) {
      if (target == input)
        throw InvalidInput("cannot write '{}': it is also an input of this command; choose another output file",
                           target.string());
      throw InvalidInput("cannot write '{}': it is '{}', an input of this command; choose another output file",
                         target.string(), input.string());
    }
    if (input_status && S_ISDIR(input_status->st_mode) && is_inside(resolved, input_resolved))
      throw InvalidInput("cannot write '{}': it is inside '{}', an input of this command; choose a file outside it",
                         target.string(), input.string());
  }
}

}  // namespace

void check_output_target(const fs::path& target, std::span<const fs::path> inputs) {
  if (target == kStandardOutputName) return;
  if (target.empty()) throw InvalidInput("an output file name is empty; expected a path (or '-' for standard output)");
  const fs::path resolved = resolved_target(target);
  if (const std::optional<struct stat> status = stat_of(resolved); status && !S_ISREG(status->st_mode))
    throw InvalidInput("cannot write '{}': it is {}, not a regular file; Loom writes only regular files{}",
                       target.string(), file_kind_text(status->st_mode),
                       S_ISDIR(status->st_mode) ? "" : " (use '-' for standard output)");
  refuse_inputs(target, resolved, inputs);
  const fs::path directory = directory_of(resolved);
  const std::optional<struct stat> directory_status = stat_of(directory);
  if (!directory_status)
    throw InvalidInput("cannot write '{}': the directory '{}' does not exist", target.string(), directory.string());
  if (!S_ISDIR(directory_status->st_mode))
    throw InvalidInput("cannot write '{}': '{}' is not a directory", target.string(), directory.string());
  if (::access(directory.c_str(), W_OK) != 0)
    throw InvalidInput("cannot write '{}': the directory '{}' is not writable ({})", target.string(),
                       directory.string(), std::strerror(errno));
}

OutputFile::OutputFile(fs::path target, std::span<const fs::path> inputs) {
  check_output_target(target, inputs);
  if (target == kStandardOutputName) {
    target_ = std::move(target);
    return;
  }
  target_ = resolved_target(target);
  // The pid keeps two processes that write one target apart; the counter, two writers of one
  // process. O_EXCL and O_NOFOLLOW: the temporary is always a new file of ours, never something
  // planted under its name.
  static std::atomic<unsigned> counter{0};
  temporary_ = target_.string() + std::string(kTemporaryMarker) + std::to_string(::getpid()) + "-" +
               std::to_string(counter++);
  registration_ = std::make_unique<TemporaryRegistration>(temporary_);
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError("cannot write '{}': {}", temporary_.string(), std::strerror(errno));
  // A file the user had made private stays private when Loom replaces it.
  if (const std::optional<struct stat> old = stat_of(target_)) ::fchmod(fd_, old->st_mode & 07777);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!published_ && !temporary_.empty()) {
    std::error_code ignored;  // a destructor must not throw; the temporary is only litter
    fs::remove(temporary_, ignored);
  }
}

void OutputFile::write(std::span<const std::byte> bytes) {
  if (temporary_.empty()) {
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size())
      throw IoError("cannot write to standard output: {}", std::strerror(errno));
    return;
  }
  const std::byte* data = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t written = ::write(fd_, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) throw IoError("cannot write '{}': {}", target_.string(), std::strerror(errno));
    data += written;
    left -= size_t(written);
  }
}

void OutputFile::write(std::string_view text) {
  write(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

void OutputFile::publish() {
  if (temporary_.empty()) {
    finish_standard_output();
    published_ = true;
    return;
  }
  // Delayed allocation may report a full disk only here.
  if (::fsync(fd_) != 0) throw IoError("cannot write '{}': {}", target_.string(), std::strerror(errno));
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) throw IoError("cannot write '{}': {}", target_.string(), std::strerror(errno));
  // The target may have become a special file since the check: never rename over one.
  if (const std::optional<struct stat> status = stat_of(target_); status && !S_ISREG(status->st_mode))
    throw InvalidInput("cannot write '{}': it is {}, not a regular file", target_.string(),
                       file_kind_text(status->st_mode));
  if (std::rename(temporary_.c_str(), target_.c_str()) != 0)
    throw IoError("cannot write '{}': renaming the temporary onto it failed: {}", target_.string(),
                  std::strerror(errno));
  published_ = true;
  registration_.reset();
  sync_directory(directory_of(target_));
}

void write_output_file(const fs::path& target, std::string_view contents, std::span<const fs::path> inputs) {
  OutputFile file(target, inputs);
  file.write(contents);
  file.publish();
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

void finish_standard_output() {
  std::cout.flush();
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  int reason = flushed ? 0 : errno;
  if (flushed && !std::ferror(stdout) && !std::cout.fail()) return;
  // The write that failed was an earlier one, whose errno is gone: one more byte (the text is
  // lost anyway) asks the file again why it refuses (a full disk, a closed pipe).
  if (reason == 0 && ::write(STDOUT_FILENO, "\n", 1) < 0) reason = errno;
  std::clearerr(stdout);
  std::cout.clear();
  throw IoError("cannot write to standard output: {}", reason != 0 ? std::strerror(reason) : "a write failed");
}

}  // namespace loom::core
