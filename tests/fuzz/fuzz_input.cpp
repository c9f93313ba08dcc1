#include "fuzz_input.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace loom::fuzz {

std::string write_input_file(const uint8_t* data, size_t size, std::string_view name) {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    const std::filesystem::path own = base / ("loom-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(own);
    // Removed at exit, so that fuzzing leaves nothing behind.
    static const std::filesystem::path to_remove = own;
    std::atexit([] { std::filesystem::remove_all(to_remove); });
    return own;
  }();
  const std::filesystem::path path = dir / std::string(name);
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) std::abort();  // the harness's own failure, not a finding in Loom
  if (size > 0 && std::fwrite(data, 1, size, file) != size) std::abort();
  std::fclose(file);
  return path.string();
}

}  // namespace loom::fuzz
