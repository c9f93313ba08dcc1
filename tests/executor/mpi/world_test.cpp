// make_world_communicator and node_local_rank, on ranks that mpirun started on this one machine.

#include "executor/comm/world.hpp"
#include "core/error.hpp"
#include "tests/executor/mpi/mpi_test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

namespace loom::exec {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

TEST(MpiWorld, TheCpuWorldIsEveryRankInWorldOrder) {
  auto world = make_world_communicator(Backend::cpu);
  const int n = world->size();
  EXPECT_EQ(n, testing::world_size());
  const int32_t me = world->rank();
  std::vector<int32_t> all(static_cast<size_t>(n), -1), want(static_cast<size_t>(n));
  std::iota(want.begin(), want.end(), 0);
  world->all_gather(&me, all.data(), 1, ElementType::i32);
  EXPECT_THAT(all, ElementsAreArray(want));
}

// Every rank of these tests runs here, so the node's order is the world's.
TEST(MpiWorld, OnOneMachineTheLocalRankIsTheWorldRank) {
  EXPECT_EQ(node_local_rank(), mpi_world()->rank());
}

// The refusal comes before any collective, on every rank alike.
TEST(MpiWorld, CudaNeedsTheCudaBackendAndItsKernels) {
  try {
    make_world_communicator(Backend::cuda);
    ADD_FAILURE() << "a cuda world without CUDA kernels was made";
  } catch (const Error& error) {
#ifdef LOOM_HAVE_CUDA
    EXPECT_THAT(error.what(), HasSubstr("make the CUDA kernels before the communicator"));
#else
    EXPECT_NE(dynamic_cast<const InvalidInput*>(&error), nullptr) << error.what();
    EXPECT_THAT(error.what(), HasSubstr("--backend cuda: this build of Loom has no CUDA backend"));
#endif
  }
}

}  // namespace
}  // namespace loom::exec
