#pragma once
// The one way Loom writes a file the user named or a file of its own (plans, traces, profiles,
// checkpoints, exported models). Three rules hold for every output:
//  - Loom never writes over what is not its own: a target that exists and is not a regular
//    file (a device node, a FIFO, a directory, a socket) is refused, and so is a target that is
//    one of the command's own inputs (the same file, by inode or by path, or a file inside an
//    input directory such as the checkpoint being read). "-" is standard output, the one
//    special file written to, because the user asked for it plainly.
//  - A file appears whole or not at all: contents go to a temporary beside the target, are
//    flushed to disk (fsync), and only then renamed onto it; the directory is flushed so that
//    the rename survives a power cut. Any failure (a full disk, an exception midway) removes the
//    temporary and leaves the old target, or none, in place.
//  - Every write is checked; a failure is an IoError naming the file and the system's reason.
// A target that is a symbolic link is written through: the file it points to is replaced (and
// checked by the rules above), the link stays.

#include <cstddef>      // std::byte
#include <filesystem>   // std::filesystem::path
#include <memory>       // the temporary's registration
#include <span>         // bytes to write, the command's inputs
#include <string>       // the temporary's name
#include <string_view>  // text to write

namespace loom::core {

class TemporaryRegistration;  // core/temporary_cleanup.hpp

// The name a command gives standard output in place of a file.
inline constexpr std::string_view kStandardOutputName = "-";

// Refuses (InvalidInput) a target that breaks the first rule above, or whose directory does not
// exist or is not writable. Commands call it before long work, so that a bad --out is refused
// before a minute of measuring, not after; OutputFile calls it again when it opens.
// `inputs` are the command's input files and directories (empty paths are ignored).
void check_output_target(const std::filesystem::path& target, std::span<const std::filesystem::path> inputs = {});

class OutputFile {
 public:
  // Checks the target (check_output_target) and creates the temporary "<target>.tmp-<pid>-<n>".
  // With "-" as target, writes go straight to standard output and publish() flushes it.
  explicit OutputFile(std::filesystem::path target, std::span<const std::filesystem::path> inputs = {});
  // Removes the temporary unless publish() completed: an exception midway leaves no litter, and
  // neither does Ctrl-C or SIGTERM while it is open (core/temporary_cleanup.hpp).
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(std::span<const std::byte> bytes);
  void write(std::string_view text);
  // fsync the temporary, rename it onto the target, fsync the directory.
  void publish();

  const std::filesystem::path& target() const { return target_; }
  const std::filesystem::path& temporary_path() const { return temporary_; }

 private:
  std::filesystem::path target_;     // where the file will be (symbolic links resolved)
  std::filesystem::path temporary_;  // empty for standard output
  std::unique_ptr<TemporaryRegistration> registration_;  // unlinks the temporary if a signal ends us
  int fd_ = -1;
  bool published_ = false;
};

// A whole text file in one call: OutputFile, write, publish.
void write_output_file(const std::filesystem::path& target, std::string_view contents,
                       std::span<const std::filesystem::path> inputs = {});

// True for a name OutputFile uses as a temporary; directory scans skip these.
bool is_temporary_file_name(const std::string& name);

// Removes "<target>.tmp-*" files: the temporaries of writers that died before they could publish
// or clean up (a rank ended by MPI_Abort or SIGKILL midway through its shard). Only for files a
// single writer owns (a rank's checkpoint shard): another live writer's temporary would go too.
void remove_stale_temporaries(const std::filesystem::path& target);

// fsync a directory so that entries created, renamed or removed in it are on disk. Where the
// system cannot open directories for this, it does nothing (durability is then the OS's).
void sync_directory(const std::filesystem::path& directory);

// Flushes standard output (C and C++ streams) and throws IoError "cannot write to standard
// output: <reason>" if anything written to it was lost (a full disk, a closed pipe, /dev/full).
void finish_standard_output();

}  // namespace loom::core
