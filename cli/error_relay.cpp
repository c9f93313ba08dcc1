#include "cli/error_relay.hpp"

#include "core/error.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
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

// Open MPI's banner after an MPI_Abort, which Loom's error handler calls once the rank has said
// why: a rule, "MPI_ABORT was invoked on rank …", a note that all processes will be killed, a
// rule, then perhaps "N more processes have sent help message help-mpi-api.txt / mpi-abort" and
// a hint about orte_base_help_aggregate. After a rank error it adds nothing, and it stood between
// that error and `loom`'s own last line; without one (an abort Loom did not make) it passes.
void ErrorRelay::take_line(const std::string& line, bool ended) {
  std::string out = line + (ended ? "\n" : "");
  const bool rule = line.size() >= kRuleMinimum && line.find_first_not_of('-') == std::string::npos;
  const bool after_error = !first_error().empty();
  if (in_abort_banner_) {
    if (rule) in_abort_banner_ = false;
    return;
  }
  if (!held_rule_.empty()) {
    const std::string held = std::exchange(held_rule_, "");
    if (after_error && line.starts_with("MPI_ABORT was invoked on rank")) {
      in_abort_banner_ = true;
      return;
    }
    write_all(STDERR_FILENO, held.data(), held.size());
  }
  if (rule && ended) {
    held_rule_ = out;  // until the next line tells whose banner it opens
    return;
  }
  if (after_error && line.find("help message help-mpi-api.txt / mpi-abort") != std::string::npos) {
    skip_aggregate_hint_ = true;
    return;
  }
  if (skip_aggregate_hint_ && line.find("orte_base_help_aggregate") != std::string::npos) {
    skip_aggregate_hint_ = false;
    return;
  }
  write_all(STDERR_FILENO, out.data(), out.size());
  if (!line.starts_with(kRankErrorPrefix)) return;
  std::lock_guard lock(mutex_);
  if (first_error_.empty()) first_error_ = line.substr(kRankErrorPrefix.size());
}

}  // namespace loom::cli
