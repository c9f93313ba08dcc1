#pragma once
// Runs the real `loom` binary as a user would, capturing what it prints and how it ends.

#include <filesystem>
#include <string>

namespace loom::cli::testing {

struct LoomResult {
  int exit_code = -1;      // meaningful when !signalled
  bool signalled = false;  // killed by a signal: a crash
  std::string out;
  std::string err;
};

// `arguments` is appended to the binary's path as shell words; `stdin_text` is fed on stdin.
LoomResult run_loom(const std::string& arguments, const std::string& stdin_text = "");

// run_loom under `timeout`: a command that would hang (a reader blocked on a FIFO) ends as exit
// 124 after `limit_s` instead of hanging the suite. A guard, not a timing assertion.
LoomResult run_loom_within(int limit_s, const std::string& arguments, const std::string& stdin_text = "");

// The whole file, bytes as they are; empty when it cannot be read.
std::string read_file(const std::filesystem::path& path);

std::string fixture_path(const std::string& relative);

}  // namespace loom::cli::testing
