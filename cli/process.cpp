#include "cli/process.hpp"

#include "core/error.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace loom::cli {

std::string executor_path() {
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  const std::filesystem::path next_to_me = self.parent_path() / "loom-exec";
  if (!std::filesystem::exists(next_to_me))
    throw IoError("cannot find the executor at {} (build the loom-exec target; it needs MPI)", next_to_me.string());
  return next_to_me.string();
}

std::string loom_path() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

namespace {

pid_t child_pid = 0;
void forward_signal(int signal) {
  if (child_pid > 0) kill(child_pid, signal);
}

}  // namespace

int spawn_and_wait(const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Open MPI refuses root without these; the ranks inherit them.
  if (geteuid() == 0) {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  const int spawned = posix_spawnp(&child_pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw IoError("cannot start '{}': {}", args[0], std::strerror(spawned));
  // A cancel (SIGINT from a terminal, SIGTERM from the GUI) reaches every rank through the launcher.
  signal(SIGINT, forward_signal);
  signal(SIGTERM, forward_signal);
  int status = 0;
  while (waitpid(child_pid, &status, 0) < 0 && errno == EINTR) {
  }
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  child_pid = 0;
  return status;
}

}  // namespace loom::cli
