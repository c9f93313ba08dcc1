#pragma once
// Files that appear whole or not at all. Contents go to a temporary file beside the target,
// are flushed to disk (fsync), and only then renamed onto the target, and the directory is
// flushed so the rename itself survives a power cut. A crash at any point leaves either the
// old target (or none) plus perhaps a stray temporary, never a half-written target; readers
// that look only for final names therefore never see a partial checkpoint.

#include <cstddef>      // std::byte
#include <filesystem>   // std::filesystem::path
#include <span>         // bytes to write
#include <string>       // the temporary's name
#include <string_view>  // text to write

namespace loom::exec {

class AtomicFileWriter {
 public:
  // Creates the temporary "<target>.tmp-<pid>"; the pid keeps two processes that write the
  // same target from sharing a temporary. Failures here and below are IoError naming the file.
  explicit AtomicFileWriter(std::filesystem::path target);
  // Removes the temporary unless publish() completed: an exception midway leaves no litter.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(std::span<const std::byte> bytes);
  void write(std::string_view text);
  // fsync the temporary, rename it onto the target, fsync the directory.
  void publish();

  const std::filesystem::path& temporary_path() const { return temporary_; }

 private:
  std::filesystem::path target_;
  std::filesystem::path temporary_;
  int fd_ = -1;
  bool published_ = false;
};

// True for a name AtomicFileWriter uses as a temporary; directory scans skip these.
bool is_temporary_file_name(const std::string& name);

// Removes "<target>.tmp-*" files: the temporaries of writers that died before they could publish
// or clean up (a rank ended by MPI_Abort or SIGKILL midway through its shard). Called before a
// target is written again, so that a failed checkpoint's space comes back with the next one.
void remove_stale_temporaries(const std::filesystem::path& target);

// fsync a directory so that entries created, renamed or removed in it are on disk. Where the
// system cannot open directories for this, it does nothing (durability is then the OS's).
void sync_directory(const std::filesystem::path& directory);

}  // namespace loom::exec
