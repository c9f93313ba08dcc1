#pragma once
// What every fuzz target shares. A reader may refuse any input, but only with loom::Error (the
// one clear error the user sees): any other exception escapes LLVMFuzzerTestOneInput, and
// libFuzzer reports it as a crash, as it does sanitizer findings.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace loom::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The readers of binary files take a path: the input is written to a file of this process's
// own (in /dev/shm when there is one, so that each run costs no disk I/O) and read back.
std::string write_input_file(const uint8_t* data, size_t size, std::string_view name);

}  // namespace loom::fuzz
