#pragma once
// Shared by the MPI tests: the world size and a skip for tests written for one world size.
// Every rank takes the same skip decision, so no rank is left waiting in a collective.

#include "executor/comm/communicator.hpp"
#include "executor/comm/mpi_session.hpp"  // mpi_world

#include <gtest/gtest.h>

namespace loom::exec::testing {

inline int world_size() { return mpi_world()->size(); }

}  // namespace loom::exec::testing

#define LOOM_REQUIRE_RANKS(n)                                                  \
  if (::loom::exec::testing::world_size() != (n))                              \
  GTEST_SKIP() << "needs " << (n) << " ranks, running on "                     \
               << ::loom::exec::testing::world_size()
