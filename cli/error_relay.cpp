#include "cli/error_relay.hpp"

#include "core/error.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>
#include <utility>

namespace loom::cli {
namespace {

constexpr std::string_view kRankErrorPrefix = "loom-exec: error: ";
// Open MPI's help messages open and close with a rule of dashes (74 of them).
constexpr size_t kRuleMinimum = 40;
// How long the rest of the output may take to arrive after the child has exited.
constexpr std::chrono::seconds kDrainLimit{2};

void write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;  // our own standard error is gone: nothing left to tell
    data += written;
    size -= size_t(written);
  }
}

}  // namespace

ErrorRelay::ErrorRelay() {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0)
    throw IoError("cannot make a pipe for the executor's errors: {}", std::strerror(errno));
  read_end_ = ends[0];
  write_end_ = ends[1];
}

ErrorRelay::~ErrorRelay() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (write_end_ >= 0) ::close(write_end_);
  if (read_end_ >= 0) ::close(read_end_);
}

void ErrorRelay::start() {
  ::close(write_end_);
  write_end_ = -1;
  thread_ = std::thread([this] { relay(); });
}

void ErrorRelay::finish() {
  const auto deadline = std::chrono::steady_clock::now() + kDrainLimit;
  while (thread_.joinable() && !drained_ && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string ErrorRelay::first_error() const {
  std::lock_guard lock(mutex_);
  return first_error_;
}

std::string ErrorRelay::launcher_notice() const {
  std::lock_guard lock(mutex_);
  return launcher_notice_;
}

void ErrorRelay::relay() {
  // A reader of our standard error that has gone (`loom run … 2>&1 | head`) must not end `loom`
  // with SIGPIPE while the ranks run on unrecorded: this thread gets EPIPE instead, and goes on
  // draining the pipe so that the ranks never block on it.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  std::string pending;
  char buffer[4096];
  while (!stopping_) {
    pollfd ready{read_end_, POLLIN, 0};
    const int polled = ::poll(&ready, 1, 50);
    if (polled < 0 && errno != EINTR) break;
    if (polled <= 0) continue;
    const ssize_t got = ::read(read_end_, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // end of file: every writer has closed its end
    pending.append(buffer, size_t(got));
    for (size_t newline; (newline = pending.find('\n')) != std::string::npos;) {
      take_line(pending.substr(0, newline), true);
      pending.erase(0, newline + 1);
    }
  }
  if (!pending.empty()) take_line(pending, false);
  write_all(STDERR_FILENO, held_rule_.data(), held_rule_.size());
  drained_ = true;
}

// Open MPI's banners after a rank has failed say only that it did: "MPI_ABORT was invoked on
// rank …" (Loom's error handler aborts once the rank has said why), or, for a single rank that
// returned its status, "Primary job terminated normally, but 1 process returned a non-zero exit
// code" and "mpirun detected that one or more processes exited with non-zero status"; each
// between rules of dashes, perhaps followed by "N more processes have sent help message …", a
// hint about orte_base_help_aggregate, and ORTE_ERROR_LOG lines from its help aggregator when
// ranks abort at once. After a rank error they add nothing, and they stood between that error
// and `loom`'s own last line. Without one (an abort Loom did not make) they pass.
bool opens_failure_banner(const std::string& line) {
  return line.starts_with("MPI_ABORT was invoked on rank") || line.starts_with("Primary job  terminated normally") ||
         line.starts_with("Primary job terminated normally") ||
         line.starts_with("mpirun detected that one or more processes exited with non-zero status");
}

bool is_failure_chatter(const std::string& line) {
  return line.find("help message help-mpi-api.txt / mpi-abort") != std::string::npos ||
         line.find("orte_base_help_aggregate") != std::string::npos ||
         (line.find("ORTE_ERROR_LOG") != std::string::npos && line.find("show_help.c") != std::string::npos);
}

// A rank's error line is kept, not passed on: `loom` says it once, in its own last line, with
// what became of the run. Every other line passes, unless it belongs to Open MPI's account of a
// failure that a rank has already explained (above).
void ErrorRelay::take_line(const std::string& line, bool ended) {
  std::string out = line + (ended ? "\n" : "");
  const bool rule = line.size() >= kRuleMinimum && line.find_first_not_of('-') == std::string::npos;
  if (line.find("noticed that process rank") != std::string::npos) {
    std::lock_guard lock(mutex_);
    if (launcher_notice_.empty()) {
      launcher_notice_ = line.substr(line.find_first_not_of(" \t"));
      while (!launcher_notice_.empty() && (launcher_notice_.back() == '.' || launcher_notice_.back() == ' '))
        launcher_notice_.pop_back();
    }
  }
  const bool after_error = !first_error().empty();
  if (in_abort_banner_) {
    if (rule) in_abort_banner_ = false;
    return;
  }
  if (!held_rule_.empty()) {
    const std::string held = std::exchange(held_rule_, "");
    if (after_error && opens_failure_banner(line)) {
      in_abort_banner_ = true;
      return;
    }
    write_all(STDERR_FILENO, held.data(), held.size());
  }
  if (rule && ended) {
    held_rule_ = out;  // until the next line tells whose banner it opens
    return;
  }
  if (after_error && is_failure_chatter(line)) return;
  if (line.starts_with(kRankErrorPrefix)) {
    std::lock_guard lock(mutex_);
    if (first_error_.empty()) first_error_ = line.substr(kRankErrorPrefix.size());
    return;
  }
  write_all(STDERR_FILENO, out.data(), out.size());
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status)) return fmt::format("the executor was killed by signal {}", WTERMSIG(status));
  return fmt::format("the executor exited with status {}", WEXITSTATUS(status));
}

ExecutorFailure executor_failure(int status, const ErrorRelay& errors) {
  const std::string said = errors.first_error();
  // Status 2 is the executor's "your input is wrong", as it is `loom`'s: said in its own words.
  if (WIFEXITED(status) && WEXITSTATUS(status) == 2 && !said.empty()) return {said, true};
  if (!said.empty()) return {fmt::format("{} ({})", said, describe_wait_status(status)), false};
  return {describe_wait_status(status), false};
}

void throw_executor_failure(int status, const ErrorRelay& errors) {
  const ExecutorFailure failure = executor_failure(status, errors);
  if (failure.bad_input) throw InvalidInput("{}", failure.reason);
  throw Error("{}", failure.reason);
}

}  // namespace loom::cli
