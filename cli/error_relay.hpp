#pragma once
// The executor's standard error, passed through `loom` line by line while the first error a rank
// reports is kept. Rank 0 records its own failure in the store, but when another rank fails first
// its MPI_Abort can end rank 0 before it writes anything: the reason then exists only in that
// rank's `loom-exec: error: rank N: …` line, which this relay catches. The ranks' error lines and
// Open MPI's banners after them are left out: `loom` says the first error once, in its own last
// line (one line for a failure, as for any other error of `loom`).

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

namespace loom::cli {

class ErrorRelay {
 public:
  ErrorRelay();  // IoError when no pipe can be made
  ~ErrorRelay();
  ErrorRelay(const ErrorRelay&) = delete;
  ErrorRelay& operator=(const ErrorRelay&) = delete;

  // The end the child writes its standard error to.
  int child_end() const { return write_end_; }
  // After the child has been spawned: closes this process's copy of the child's end and starts
  // passing lines through to this process's standard error.
  void start();
  // After the child has exited: waits (a short while: an orphaned rank may still hold the pipe)
  // for the rest of its output and stops.
  void finish();
  // The first line a rank wrote as `loom-exec: error: …`, without that prefix; empty when none.
  std::string first_error() const;
  // Open MPI's first "mpirun noticed that process rank N … exited on signal S (…)" line, trimmed
  // (it names the rank that died); empty when none. The line is still passed on.
  std::string launcher_notice() const;

 private:
  void relay();
  // One line (`ended`: it had its newline): passed on, unless it is a rank's error (kept) or
  // belongs to Open MPI's account of a failure a rank has explained.
  void take_line(const std::string& line, bool ended);

  int read_end_ = -1;
  int write_end_ = -1;
  std::thread thread_;
  std::atomic<bool> stopping_{false};  // asked to stop
  std::atomic<bool> drained_{false};   // stopped by itself, at end of file
  // The banner filter's state; only the relay thread touches it.
  std::string held_rule_;  // a rule of dashes, held until the next line says whose banner it opens
  bool in_abort_banner_ = false;
  mutable std::mutex mutex_;
  std::string first_error_;
  std::string launcher_notice_;
};

// "the executor exited with status 1", "… was killed by signal 9", from a wait status.
std::string describe_wait_status(int status);

// Why the executor failed (wait status `status`), in one line: what its first rank error said,
// with the status unless it exited with 2 (bad input, as `loom`'s own status 2); the status alone
// when no rank said anything.
struct ExecutorFailure {
  std::string reason;
  bool bad_input = false;  // exit status 2 with a rank's word for it
};
ExecutorFailure executor_failure(int status, const ErrorRelay& errors);

// Throws executor_failure's reason: InvalidInput for bad input, else Error.
[[noreturn]] void throw_executor_failure(int status, const ErrorRelay& errors);

}  // namespace loom::cli
