// An llm.c token shard (`loom run --data file.bin`): opened (header, size and every token
// checked) and, when accepted, read token by token as the batcher does.

#include "core/error.hpp"
#include "executor/data/token_source.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loom::fuzz::write_input_file(data, size, "tokens.bin");
  try {
    const auto source = loom::exec::open_token_shard(path, 50257);
    int64_t sum = 0;
    for (int64_t i = 0; i < source->size(); ++i) sum += source->token(i);
    if (sum < 0) __builtin_trap();  // every token was checked to lie in [0, vocabulary)
  } catch (const loom::Error&) {
  }
  return 0;
}
