// The relay between the executor's standard error and `loom`'s: every byte but the ranks' error
// lines passes through, and the first rank error is kept, whichever rank wrote it, for `loom` to
// say once in its own last line.

#include "cli/error_relay.hpp"
#include "cli/process.hpp"
#include "core/error.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <utility>

namespace loom::cli {
namespace {

// Runs `script` under /bin/sh through a relay while this process's standard error goes to a
// pipe; returns what reached it, and the relay's first error.
struct Relayed {
  int status = 0;
  std::string passed_through;
  std::string first_error;
};

Relayed relay_of(const std::string& script) {
  int ends[2];
  // Close-on-exec, so that a process the script leaves behind holds neither this pipe nor, through
  // the saved descriptor, the test runner's.
  EXPECT_EQ(::pipe2(ends, O_CLOEXEC | O_NONBLOCK), 0);
  const int saved_stderr = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
  ::dup2(ends[1], STDERR_FILENO);
  Relayed result;
  {
    ErrorRelay relay;
    result.status = spawn_and_wait({"/bin/sh", "-c", script}, "", {}, &relay);
    result.first_error = relay.first_error();
  }
  ::dup2(saved_stderr, STDERR_FILENO);
  ::close(saved_stderr);
  ::close(ends[1]);
  char buffer[4096];
  for (ssize_t got; (got = ::read(ends[0], buffer, sizeof buffer)) > 0;)
    result.passed_through.append(buffer, size_t(got));
  ::close(ends[0]);
  return result;
}

TEST(ErrorRelay, PassesOtherLinesThroughAndKeepsTheFirstRankErrorForLoomToSay) {
  const Relayed r = relay_of(
      "echo 'loom-exec: resuming after step 4' >&2; "
      "echo 'loom-exec: error: rank 3: cannot write x: No space left on device' >&2; "
      "echo 'loom-exec: error: rank 0: cannot write y: No space left on device' >&2; "
      "printf 'no newline at the end' >&2; exit 1");
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1);
  EXPECT_EQ(r.first_error, "rank 3: cannot write x: No space left on device");
  EXPECT_EQ(r.passed_through,
            "loom-exec: resuming after step 4\n"
            "no newline at the end");
}

TEST(ErrorRelay, AnErrorInTheLastUnfinishedLineCounts) {
  const Relayed r = relay_of("printf 'loom-exec: error: rank 1: lost' >&2");
  EXPECT_EQ(r.first_error, "rank 1: lost");
  EXPECT_EQ(r.passed_through, "");
}

// loom-exec exits with 2 for bad input: `loom` then says it as its own bad-input error (status 2),
// in one line without the executor's status; any other failure names the status too.
TEST(ErrorRelay, TheExecutorsFailureBecomesLoomsOwnError) {
  auto failure_of = [](const std::string& script) {
    int exit_code = 0;
    std::string message;
    ErrorRelay relay;
    const int status = spawn_and_wait({"/bin/sh", "-c", script}, "", {}, &relay);
    try {
      throw_executor_failure(status, relay);
    } catch (const Error& e) {
      exit_code = e.exit_code();
      message = e.what();
    }
    return std::make_pair(exit_code, message);
  };
  EXPECT_EQ(failure_of("echo 'loom-exec: error: rank 0: --data is too short' >&2; exit 2"),
            std::make_pair(2, std::string("rank 0: --data is too short")));
  EXPECT_EQ(failure_of("echo 'loom-exec: error: rank 1: disk full' >&2; exit 1"),
            std::make_pair(1, std::string("rank 1: disk full (the executor exited with status 1)")));
  EXPECT_EQ(failure_of("exit 2"), std::make_pair(1, std::string("the executor exited with status 2")))
      << "status 2 without a word from a rank is not known to be the input's fault";
  EXPECT_EQ(failure_of("kill -9 $$"), std::make_pair(1, std::string("the executor was killed by signal 9")));
}

// Open MPI's words after an MPI_Abort, as Open MPI 4.1 prints them.
const std::string kRule(74, '-');
const std::string kAbortBanner =
    kRule + "\n" +
    "MPI_ABORT was invoked on rank 1 in communicator MPI_COMM_WORLD\n"
    "with errorcode 1.\n\n"
    "NOTE: invoking MPI_ABORT causes Open MPI to kill all MPI processes.\n"
    "You may or may not see output from other processes, depending on\n"
    "exactly when Open MPI kills them.\n" +
    kRule + "\n";
const std::string kAggregate =
    "[vm:15689] 1 more process has sent help message help-mpi-api.txt / mpi-abort\n"
    "[vm:15689] Set MCA parameter \"orte_base_help_aggregate\" to 0 to see all help / error "
    "messages\n";

// The script that prints `text` on standard error, byte for byte.
std::string printing(const std::string& text) {
  std::string quoted;
  for (const char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return "printf '%s' '" + quoted + "' >&2";
}

TEST(ErrorRelay, OpenMpisBannerAfterARankErrorIsLeftOut) {
  const std::string error = "loom-exec: error: rank 1: cannot write x: No space left on device\n";
  const Relayed r =
      relay_of(printing(error + kAbortBanner + "loom-exec: error: rank 0: later\n" + kAggregate));
  EXPECT_EQ(r.first_error, "rank 1: cannot write x: No space left on device");
  EXPECT_EQ(r.passed_through, "");
}

// One rank that returns its status (no abort): mpirun's two banners say only that it did.
TEST(ErrorRelay, MpirunsBannersAfterASingleRanksErrorAreLeftOut) {
  const std::string banners = kRule + "\nPrimary job  terminated normally, but 1 process returned\n"
                              "a non-zero exit code. Per user-direction, the job has been aborted.\n" +
                              kRule + "\n" + kRule +
                              "\nmpirun detected that one or more processes exited with non-zero status, thus causing\n"
                              "the job to be terminated. The first process to do so was:\n\n"
                              "  Process name: [[17970,1],0]\n  Exit code:    2\n" +
                              kRule + "\n" +
                              "[vm:08186] [[29444,0],0] ORTE_ERROR_LOG: Data unpack would read past end of buffer "
                              "in file ../../../orte/util/show_help.c at line 501\n";
  const Relayed r = relay_of(printing("loom-exec: error: rank 0: --checkpoint-every=-5 must be 0\n" + banners));
  EXPECT_EQ(r.first_error, "rank 0: --checkpoint-every=-5 must be 0");
  EXPECT_EQ(r.passed_through, "");
  EXPECT_EQ(relay_of(printing(banners)).passed_through, banners) << "without a rank's error they are all there is";
}

TEST(ErrorRelay, OpenMpisOtherMessagesPassWhole) {
  // An abort Loom's error handler did not make (no rank error before it) is told in full, and so
  // is any other help message between rules.
  const std::string slots =
      kRule + "\nThere are not enough slots available in the system to satisfy the 8\n" + kRule +
      "\n";
  EXPECT_EQ(relay_of(printing(kAbortBanner + kAggregate)).passed_through,
            kAbortBanner + kAggregate);
  const std::string error = "loom-exec: error: rank 0: boom\n";
  EXPECT_EQ(relay_of(printing(error + slots)).passed_through, slots);
  EXPECT_EQ(relay_of(printing(kRule)).passed_through, kRule) << "a rule at the very end";
}

// A process the child leaves behind may hold the pipe open: the relay stops waiting for it.
TEST(ErrorRelay, AnOrphanHoldingThePipeDoesNotHoldTheRelay) {
  const auto start = std::chrono::steady_clock::now();
  const Relayed r = relay_of("(sleep 30 >/dev/null &) ; echo 'loom-exec: error: rank 0: gone' >&2");
  EXPECT_EQ(r.first_error, "rank 0: gone");
  // Not a speed target: the relay gives up after 2 s, and waiting for the orphan would take 30.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
}

}  // namespace
}  // namespace loom::cli
