// A model document (`loom plan --model model.json`): read strictly and validated; a model that
// passes is counted (parameters) as every command does.

#include "core/error.hpp"
#include "core/json_reader.hpp"
#include "core/model_arithmetic.hpp"
#include "core/plan_json.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const loom::core::Json json = loom::core::parse_json_text(loom::fuzz::as_text(data, size), "model.json");
    loom::core::ModelSpec model = loom::core::model_from_json(json, "model");
    model.validate();
    (void)loom::core::parameter_count(model);
  } catch (const loom::Error&) {
  }
  return 0;
}
