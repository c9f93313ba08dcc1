#include "run_loom.hpp"

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace loom::cli::testing {
std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

namespace {

LoomResult run_loom_prefixed(const std::string& prefix, const std::string& arguments, const std::string& stdin_text) {
  namespace fs = std::filesystem;
  static int counter = 0;
  const fs::path dir = fs::temp_directory_path() / ("loom_cli_test_" + std::to_string(getpid()) + "_" +
                                                    std::to_string(counter++));
  fs::create_directories(dir);
  std::ofstream(dir / "in") << stdin_text;
  const std::string command = prefix + "'" + LOOM_BINARY + "' " + arguments + " <'" + (dir / "in").string() +
                              "' >'" + (dir / "out").string() + "' 2>'" + (dir / "err").string() + "'";
  const int status = std::system(command.c_str());
  LoomResult result;
  // system() runs /bin/sh, which reports a child killed by signal N as exit status 128 + N.
  if (WIFSIGNALED(status)) {
    result.signalled = true;
  } else {
    result.exit_code = WEXITSTATUS(status);
    result.signalled = result.exit_code > 128;
  }
  result.out = read_file(dir / "out");
  result.err = read_file(dir / "err");
  fs::remove_all(dir);
  return result;
}

}  // namespace

LoomResult run_loom(const std::string& arguments, const std::string& stdin_text) {
  return run_loom_prefixed("", arguments, stdin_text);
}

LoomResult run_loom_within(int limit_s, const std::string& arguments, const std::string& stdin_text) {
  return run_loom_prefixed("timeout -k 5 " + std::to_string(limit_s) + " ", arguments, stdin_text);
}

std::string fixture_path(const std::string& relative) {
  return (std::filesystem::path(LOOM_FIXTURES_DIR) / relative).string();
}

}  // namespace loom::cli::testing
