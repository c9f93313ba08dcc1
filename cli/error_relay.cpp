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

namespace loom::cli {
namespace {

constexpr std::string_view kRankErrorPrefix = "loom-exec: error: ";
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
    write_all(STDERR_FILENO, buffer, size_t(got));
    pending.append(buffer, size_t(got));
    for (size_t newline; (newline = pending.find('\n')) != std::string::npos;) {
      take_line(pending.substr(0, newline));
      pending.erase(0, newline + 1);
    }
  }
  if (!pending.empty()) take_line(pending);
  drained_ = true;
}

void ErrorRelay::take_line(const std::string& line) {
  if (!line.starts_with(kRankErrorPrefix)) return;
  std::lock_guard lock(mutex_);
  if (first_error_.empty()) first_error_ = line.substr(kRankErrorPrefix.size());
}

}  // namespace loom::cli
