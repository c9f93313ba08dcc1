// A reader and a writer on one store file at once, as the GUI reads while the executor writes:
// no "database is locked", and every read sees whole batches. And a writer killed with SIGKILL
// in the middle of a burst of writes loses nothing it committed and leaves a sound file.

#include "core/store.hpp"

#include "tests/core/store_test_support.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>  // waitpid
#include <unistd.h>    // fork, _exit

#include <signal.h>  // kill, SIGKILL
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>

namespace loom::core {
namespace {

using namespace loom::core::store_testing;
using StoreConcurrencyTest = StoreTest;

constexpr std::int64_t kBatches = 200;
constexpr std::int64_t kStepsPerBatch = 25;

void write_batches(const std::string& path, std::int64_t run_id) {
  Store writer = Store::open(path);
  for (std::int64_t batch = 0; batch < kBatches; ++batch) {
    writer.append_steps(run_id, step_batch(batch * kStepsPerBatch, kStepsPerBatch));
    if (batch % 20 == 0) writer.put_rank_stats(run_id, {{0, batch, "{}"}, {1, batch, "{}"}});
  }
  writer.finish_run(run_id, RunStatus::completed, "");
}

// Reads while `writing()` holds, as the GUI's Runs view polls (the run list, the run, its steps
// and rank statistics); every read must see whole batches, never fewer than before.
template <typename Writing>
void read_while(Store& reader, std::int64_t run_id, Writing writing) {
  std::size_t previous = 0;
  do {
    ASSERT_FALSE(reader.list_runs().empty());
    (void)reader.run(run_id);
    (void)reader.rank_stats(run_id);
    const std::size_t seen = reader.steps(run_id).size();
    ASSERT_EQ(seen % kStepsPerBatch, 0u);
    ASSERT_GE(seen, previous);
    previous = seen;
  } while (writing());
}

TEST_F(StoreConcurrencyTest, ReaderAndWriterThreadsShareTheFile) {
  std::int64_t run_id = 0;
  {
    Store setup = Store::open(path_);
    run_id = setup.begin_run(sample_run(setup.insert_plan(sample_plan())));
  }
  std::atomic<bool> done = false;
  std::exception_ptr writer_error;
  std::thread writer([&] {
    try {
      write_batches(path_, run_id);
    } catch (...) {
      writer_error = std::current_exception();
    }
    done = true;
  });
  Store reader = Store::open(path_);
  read_while(reader, run_id, [&] { return !done.load(); });
  writer.join();
  if (writer_error) std::rethrow_exception(writer_error);
  EXPECT_EQ(reader.steps(run_id).size(), static_cast<std::size_t>(kBatches * kStepsPerBatch));
}

TEST_F(StoreConcurrencyTest, ReaderAndForkedWriterProcessShareTheFile) {
  std::int64_t run_id = 0;
  {
    Store setup = Store::open(path_);
    run_id = setup.begin_run(sample_run(setup.insert_plan(sample_plan())));
  }
  // Forked before this process opens the file again: SQLite connections must not cross fork.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      write_batches(path_, run_id);
    } catch (const std::exception& error) {
      std::fprintf(stderr, "writer process: %s\n", error.what());
      ::_exit(1);
    }
    ::_exit(0);
  }
  int child_status = 0;
  bool child_exited = false;
  Store reader = Store::open(path_);
  read_while(reader, run_id, [&] {
    child_exited = ::waitpid(child, &child_status, WNOHANG) == child;
    return !child_exited;
  });
  if (!child_exited) {
    ASSERT_EQ(::waitpid(child, &child_status, 0), child);
  }
  ASSERT_TRUE(WIFEXITED(child_status));
  EXPECT_EQ(WEXITSTATUS(child_status), 0);
  EXPECT_EQ(reader.steps(run_id).size(), static_cast<std::size_t>(kBatches * kStepsPerBatch));
}

// The writer tells the test, through a pipe, how many steps it has committed; the test kills it
// with SIGKILL mid-burst. SQLite's WAL must then hold every committed batch, and no part of one
// that was not committed.
TEST_F(StoreConcurrencyTest, AWriterKilledMidBurstLosesNoCommittedStep) {
  std::int64_t run_id = 0;
  {
    Store setup = Store::open(path_);
    run_id = setup.begin_run(sample_run(setup.insert_plan(sample_plan())));
  }
  int committed_pipe[2];
  ASSERT_EQ(::pipe(committed_pipe), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(committed_pipe[0]);
    Store writer = Store::open(path_);
    for (std::int64_t batch = 0;; ++batch) {  // until killed
      writer.append_steps(run_id, step_batch(batch * kStepsPerBatch, kStepsPerBatch));
      const std::int64_t committed = (batch + 1) * kStepsPerBatch;
      if (::write(committed_pipe[1], &committed, sizeof committed) != sizeof committed) ::_exit(1);
    }
  }
  ::close(committed_pipe[1]);
  // Let it get well into its burst, then kill it at whatever it is doing.
  std::int64_t reported = 0, committed = 0;
  while (committed < 40 * kStepsPerBatch && ::read(committed_pipe[0], &reported, sizeof reported) == sizeof reported)
    committed = reported;
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  // Reports that were in the pipe when it died are commits too.
  while (::read(committed_pipe[0], &reported, sizeof reported) == sizeof reported) committed = reported;
  ::close(committed_pipe[0]);

  Store after = Store::open(path_);
  std::string integrity;
  sqlite3_exec(
      after.native_handle(), "PRAGMA integrity_check",
      [](void* out, int, char** values, char**) {
        *static_cast<std::string*>(out) += values[0] ? values[0] : "";
        return 0;
      },
      &integrity, nullptr);
  EXPECT_EQ(integrity, "ok");
  const std::vector<StepRow> steps = after.steps(run_id);
  EXPECT_GE(std::int64_t(steps.size()), committed) << "a committed step is missing";
  EXPECT_EQ(steps.size() % kStepsPerBatch, 0u) << "part of a batch that was never committed";
  for (std::size_t i = 0; i < steps.size(); ++i) ASSERT_EQ(steps[i].step, std::int64_t(i)) << "steps stored in order, none lost";
  // The store stays writable: the run can still be marked.
  after.finish_run(run_id, RunStatus::failed, "the writer was killed");
  EXPECT_EQ(after.run(run_id).status, RunStatus::failed);
}

}  // namespace
}  // namespace loom::core
