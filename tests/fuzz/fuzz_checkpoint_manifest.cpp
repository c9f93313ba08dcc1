// A checkpoint's manifest.json (`loom run --resume`): read strictly, as resuming does first.

#include "core/error.hpp"
#include "executor/checkpoint/manifest.hpp"
#include "fuzz_input.hpp"

#include <filesystem>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loom::fuzz::write_input_file(data, size, "manifest.json");
  try {
    (void)loom::exec::read_manifest(std::filesystem::path(path).parent_path());
  } catch (const loom::Error&) {
  }
  return 0;
}
