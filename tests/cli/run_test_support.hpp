#pragma once
// What the tests of `loom run` share: a fresh directory per test, and plans of Loom's small
// test model written there by `loom init`.

#include "run_loom.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

namespace loom::cli::testing {

class RunTestDirectory : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("loom_run_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // A fp32 plan of Loom's small test model on `devices` ranks; `extra` are `loom init` flags.
  std::string plan(const std::string& name, int devices, const std::string& extra = "") {
    const LoomResult r = run_loom("init --model loom-tiny --devices-per-node " + std::to_string(devices) +
                                  " --global-batch-size 8 --micro-batch-size 2 --dtype fp32 --train-iters 20 " + extra +
                                  " -o '" + path(name) + "'");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return path(name);
  }

  std::filesystem::path dir_;
};

}  // namespace loom::cli::testing
