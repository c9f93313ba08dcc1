// loom_layout_tests: the executor's layouts against a single-rank reference, resume and the
// store, through the real binaries (see layout_support.hpp).

#include "layout_support.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace {

// Removes the scratch directory at the end, unless a test failed (its files are the evidence)
// or LOOM_KEEP_TEST_FILES is set.
class ScratchCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    const std::filesystem::path dir = loom::layout_tests::scratch_dir();
    if (::testing::UnitTest::GetInstance()->Passed() &&
        std::getenv("LOOM_KEEP_TEST_FILES") == nullptr) {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    } else {
      std::cerr << "loom_layout_tests: files kept in " << dir.string() << "\n";
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  // Open MPI refuses to run as root (containers) or with more ranks than cores (8 ranks on 2)
  // unless told; ctest sets these too, this is for running the binary by hand.
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new ScratchCleanup);
  return RUN_ALL_TESTS();
}
