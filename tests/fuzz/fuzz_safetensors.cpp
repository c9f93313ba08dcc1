// A safetensors file (`--init-from`, checkpoint shards): header, dtypes, shapes and offsets
// checked; every tensor accepted is converted to fp32 as the loader does.

#include "core/error.hpp"
#include "executor/checkpoint/safetensors.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loom::fuzz::write_input_file(data, size, "model.safetensors");
  try {
    const loom::exec::SafeTensorsFile file = loom::exec::read_safetensors(path);
    for (const auto& [name, tensor] : file.tensors) {
      try {
        (void)file.f32(name);
      } catch (const loom::Error&) {  // an integer tensor: refused by name, the others still read
      }
    }
  } catch (const loom::Error&) {
  }
  return 0;
}
