// GoogleTest main for the MPI tests: MPI lives for the whole test run, only rank 0 prints the
// usual report, and the exit status is non-zero on every rank when any rank failed, so mpirun
// and ctest see a failure that happened on rank 3 alone.

#include "executor/comm/mpi_communicator.hpp"  // mpi.h (MPI_Allreduce of the verdicts)
#include "executor/comm/mpi_session.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <exception>

namespace {

// Other ranks stay quiet except for their failures: without this a failure on rank 3 would
// show only as an exit status.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.message());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    loom::exec::MpiSession session(&argc, &argv);
    ::testing::InitGoogleTest(&argc, argv);
    const int rank = session.world_rank();
    if (rank != 0) {
      auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
      listeners.Append(new FailurePrinter(rank));
    }
    int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
    int any_failed = failed;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0 && any_failed && !failed) std::fprintf(stderr, "FAILED on another rank\n");
    return any_failed;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "loom_mpi_tests: %s\n", error.what());
    return 1;
  }
}
