#pragma once
// The executor's standard error, passed through `loom` line by line while the first error a rank
// reports is kept. Rank 0 records its own failure in the store, but when another rank fails first
// its MPI_Abort can end rank 0 before it writes anything: the reason then exists only in that
// rank's `loom-exec: error: rank N: …` line, which this relay catches. Open MPI's banner after
// that abort is left out: the rank has said why, and `loom` says it again last.

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

 private:
  void relay();
  // One line (`ended`: it had its newline): passed on, unless it belongs to Open MPI's banner
  // after Loom's own MPI_Abort; a rank error is also kept.
  void take_line(const std::string& line, bool ended);

  int read_end_ = -1;
  int write_end_ = -1;
  std::thread thread_;
  std::atomic<bool> stopping_{false};  // asked to stop
  std::atomic<bool> drained_{false};   // stopped by itself, at end of file
  // The banner filter's state; only the relay thread touches it.
  std::string held_rule_;  // a rule of dashes, held until the next line says whose banner it opens
  bool in_abort_banner_ = false;
  bool skip_aggregate_hint_ = false;
  mutable std::mutex mutex_;
  std::string first_error_;
};

}  // namespace loom::cli
