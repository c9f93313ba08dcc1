#include "cli/process.hpp"

#include "cli/error_relay.hpp"

#include "core/error.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

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

// How long a launcher may take to stop its ranks after a cancel before it is killed.
constexpr std::chrono::seconds kCancelGrace{10};

volatile sig_atomic_t child_pid = 0;
volatile sig_atomic_t received_signal = 0;

void forward_signal(int signal) {
  if (received_signal == 0) received_signal = signal;
  if (child_pid > 0) kill(pid_t(child_pid), signal);
}

// Without SA_RESTART, so that a signal wakes the wait below up and the grace period starts.
struct sigaction forwarding_action() {
  struct sigaction action {};
  action.sa_handler = forward_signal;
  sigemptyset(&action.sa_mask);
  return action;
}

// Our children other than those we wait for: with this process a subreaper, a launcher's ranks
// become ours when the launcher dies before them.
std::vector<pid_t> children_of_this_process() {
  std::vector<pid_t> children;
  const pid_t self = getpid();
  DIR* proc = opendir("/proc");
  if (!proc) return children;
  while (const dirent* entry = readdir(proc)) {
    const pid_t pid = pid_t(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const size_t command_end = text.rfind(')');  // the command name may hold spaces and parentheses
    if (command_end == std::string::npos) continue;
    std::istringstream fields(text.substr(command_end + 1));
    char state = 0;
    pid_t parent = 0;
    if (fields >> state >> parent && parent == self) children.push_back(pid);
  }
  closedir(proc);
  return children;
}

void kill_and_reap_leftovers() {
  for (const pid_t pid : children_of_this_process()) kill(pid, SIGKILL);
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  for (const pid_t pid : children_of_this_process()) waitpid(pid, nullptr, 0);
}

}  // namespace

void end_leftover_processes() { kill_and_reap_leftovers(); }

void catch_cancel_signals() {
  const struct sigaction action = forwarding_action();
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int cancel_signal_received() { return received_signal; }

int spawn_and_wait(const std::vector<std::string>& args, const std::string& log_path,
                   const std::function<void()>& on_cancel, ErrorRelay* errors) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Open MPI refuses root without these; the ranks inherit them.
  if (geteuid() == 0) {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }
  // Ranks orphaned by a launcher that dies become our children, so that a cancel can end them.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  } else if (errors) {
    posix_spawn_file_actions_adddup2(&actions, errors->child_end(), STDERR_FILENO);
  }
  // A cancel (SIGINT from a terminal, SIGTERM from the GUI) reaches every rank through the
  // launcher. Caught before the spawn, so that none is lost in between; the child starts with
  // default dispositions (exec resets caught signals).
  struct sigaction previous_int {}, previous_term {};
  const struct sigaction action = forwarding_action();
  sigaction(SIGINT, &action, &previous_int);
  sigaction(SIGTERM, &action, &previous_term);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    sigaction(SIGINT, &previous_int, nullptr);
    sigaction(SIGTERM, &previous_term, nullptr);
    throw IoError("cannot start '{}': {}", args[0], std::strerror(spawned));
  }
  child_pid = pid;
  if (errors && log_path.empty()) errors->start();
  // A cancel that came before the child existed.
  if (received_signal != 0) kill(pid, received_signal);
  int status = 0;
  std::optional<std::chrono::steady_clock::time_point> killed_at, cancelled_at;
  for (;;) {
    const pid_t waited = waitpid(pid, &status, received_signal != 0 ? WNOHANG : 0);
    if (waited == pid) break;
    if (waited < 0 && errno != EINTR) throw IoError("cannot wait for '{}': {}", args[0], std::strerror(errno));
    if (received_signal == 0) continue;
    const auto now = std::chrono::steady_clock::now();
    if (!cancelled_at) {
      cancelled_at = now;
      if (on_cancel) on_cancel();
    }
    if (!killed_at && now - *cancelled_at > kCancelGrace) {
      kill(pid, SIGKILL);
      killed_at = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  child_pid = 0;
  if (received_signal != 0) kill_and_reap_leftovers();
  if (errors && log_path.empty()) errors->finish();
  sigaction(SIGINT, &previous_int, nullptr);
  sigaction(SIGTERM, &previous_term, nullptr);
  return status;
}

WatchedExit spawn_and_watch(const std::vector<std::string>& args, const std::function<void(const std::string&)>& on_line,
                            double heartbeat_timeout_s, const std::function<void()>& on_cancel, ErrorRelay* errors) {
  using Clock = std::chrono::steady_clock;
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  if (geteuid() == 0) {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  int output[2] = {-1, -1};
  if (pipe2(output, O_CLOEXEC) != 0) throw IoError("cannot make a pipe: {}", std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, output[1], STDOUT_FILENO);
  if (errors) posix_spawn_file_actions_adddup2(&actions, errors->child_end(), STDERR_FILENO);
  struct sigaction previous_int {}, previous_term {};
  const struct sigaction action = forwarding_action();
  sigaction(SIGINT, &action, &previous_int);
  sigaction(SIGTERM, &action, &previous_term);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(output[1]);
  if (spawned != 0) {
    close(output[0]);
    sigaction(SIGINT, &previous_int, nullptr);
    sigaction(SIGTERM, &previous_term, nullptr);
    throw IoError("cannot start '{}': {}", args[0], std::strerror(spawned));
  }
  child_pid = pid;
  if (errors) errors->start();
  if (received_signal != 0) kill(pid, received_signal);

  std::string pending;
  bool output_open = true;
  // Reads what the child has written (waiting up to `wait_ms` for it) and passes on whole lines.
  auto read_output = [&](int wait_ms) {
    if (!output_open) {
      if (wait_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      return false;
    }
    pollfd readable{output[0], POLLIN, 0};
    if (poll(&readable, 1, wait_ms) <= 0) return false;
    char buffer[4096];
    const ssize_t got = read(output[0], buffer, sizeof(buffer));
    if (got <= 0) {
      if (got < 0 && errno == EINTR) return false;
      output_open = false;
      return false;
    }
    pending.append(buffer, size_t(got));
    bool lines = false;
    for (size_t newline; (newline = pending.find('\n')) != std::string::npos;) {
      on_line(pending.substr(0, newline));
      pending.erase(0, newline + 1);
      lines = true;
    }
    return lines;
  };

  WatchedExit exit;
  Clock::time_point last_line = Clock::now();
  std::optional<Clock::time_point> stop_asked_at, killed_at;
  for (;;) {
    if (read_output(50)) last_line = Clock::now();
    const pid_t waited = waitpid(pid, &exit.status, WNOHANG);
    if (waited == pid) break;
    if (waited < 0 && errno != EINTR) throw IoError("cannot wait for '{}': {}", args[0], std::strerror(errno));
    const auto now = Clock::now();
    if (received_signal != 0 && !stop_asked_at) {
      stop_asked_at = now;
      if (on_cancel) on_cancel();
    }
    if (!stop_asked_at && heartbeat_timeout_s > 0 &&
        std::chrono::duration<double>(now - last_line).count() > heartbeat_timeout_s) {
      exit.heartbeat_missed = true;
      stop_asked_at = now;
      kill(pid, SIGTERM);
    }
    if (stop_asked_at && !killed_at && now - *stop_asked_at > kCancelGrace) {
      kill(pid, SIGKILL);
      killed_at = now;
    }
  }
  child_pid = 0;
  // The rest of its output; an orphaned rank may hold the pipe open, so not for long.
  const auto drain_until = Clock::now() + std::chrono::seconds(1);
  while (output_open && Clock::now() < drain_until) read_output(50);
  if (!pending.empty()) on_line(pending);
  close(output[0]);
  if (received_signal != 0 || exit.heartbeat_missed) kill_and_reap_leftovers();
  if (errors) errors->finish();
  sigaction(SIGINT, &previous_int, nullptr);
  sigaction(SIGTERM, &previous_term, nullptr);
  return exit;
}

}  // namespace loom::cli
