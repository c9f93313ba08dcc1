#pragma once
// Temporaries of writes in progress, removed when a signal ends the process: Ctrl-C, a SIGTERM
// from mpirun when another rank failed, the GUI's Cancel, a closed terminal. OutputFile already
// removes its temporary when it fails; this covers the process being stopped midway through a
// write of gigabytes (an exported model, a checkpoint shard), which would otherwise leave it.
// SIGKILL cannot be caught: checkpoints remove the temporaries of writers that died before
// writing again (core/output_file.hpp, remove_stale_temporaries).

#include <filesystem>  // std::filesystem::path

namespace loom::core {

// While it lives, `path` is unlinked if SIGINT, SIGTERM or SIGHUP ends the process. The handler
// is installed only for signals whose disposition is the default (a command that catches them
// itself, such as `loom run`, keeps its own), then the signal ends the process as before.
class TemporaryRegistration {
 public:
  explicit TemporaryRegistration(const std::filesystem::path& path);
  ~TemporaryRegistration();
  TemporaryRegistration(const TemporaryRegistration&) = delete;
  TemporaryRegistration& operator=(const TemporaryRegistration&) = delete;

 private:
  int slot_ = -1;  // -1: not registered (every slot taken, or a path too long to keep)
};

}  // namespace loom::core
