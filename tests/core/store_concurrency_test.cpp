// A reader and a writer on one store file at once, as the GUI reads while the executor writes:
// no "database is locked", and every read sees whole batches.

#include "core/store.hpp"

#include "tests/core/store_test_support.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>  // waitpid
#include <unistd.h>    // fork, _exit

#include <atomic>
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
  }
}

// Reads while `writing()` holds; every read must see whole batches, never fewer than before.
template <typename Writing>
void read_while(Store& reader, std::int64_t run_id, Writing writing) {
  std::size_t previous = 0;
  do {
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

}  // namespace
}  // namespace loom::core
